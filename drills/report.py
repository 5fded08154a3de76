"""What each scenario came to, and the drill's summary table."""

from __future__ import annotations

from dataclasses import dataclass

HEADER = (
    "| scenario | runs | faults injected | result | rows lost | rows duplicated | time to recover | note |\n"
    "|---|---|---|---|---|---|---|---|"
)


@dataclass
class Outcome:
    scenario: str
    runs: int = 0
    faults: int = 0
    identical: bool = False
    lost: int = 0
    duplicated: int = 0
    recover_seconds: float = 0.0
    note: str = ""

    def judge(self, problems: list[str], fine: str) -> None:
        """After the comparison: any problem the scenario saw makes it differ, and the note names them."""
        self.identical &= not problems
        self.note = "; ".join(problems) or fine


def format_row(outcome: Outcome) -> str:
    result = "identical" if outcome.identical else "**differs**"
    return (
        f"| {outcome.scenario} | {outcome.runs} | {outcome.faults} | {result} | {outcome.lost} | "
        f"{outcome.duplicated} | {outcome.recover_seconds:.0f} s | {outcome.note.replace('|', '/')} |"
    )


def summary(outcomes: list[Outcome], seconds: float) -> str:
    identical = sum(outcome.identical for outcome in outcomes)
    return f"\n{identical} of {len(outcomes)} scenarios identical in {seconds:.0f} s"


def differing(outcomes: list[Outcome]) -> list[str]:
    return [outcome.scenario for outcome in outcomes if not outcome.identical]
