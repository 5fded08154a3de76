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
    # Could not run here (what it needs is missing): neither identical nor differing.
    skipped: bool = False

    def skip(self, why: str) -> None:
        self.skipped = True
        self.note = f"skipped: {why}"

    def judge(self, problems: list[str], fine: str) -> None:
        """After the comparison: any problem the scenario saw makes it differ, and the note names them."""
        self.identical &= not problems
        self.note = "; ".join(problems) or fine


def format_row(outcome: Outcome) -> str:
    result = "skipped" if outcome.skipped else "identical" if outcome.identical else "**differs**"
    return (
        f"| {outcome.scenario} | {outcome.runs} | {outcome.faults} | {result} | {outcome.lost} | "
        f"{outcome.duplicated} | {outcome.recover_seconds:.0f} s | {outcome.note.replace('|', '/')} |"
    )


def summary(outcomes: list[Outcome], seconds: float) -> str:
    identical = sum(outcome.identical for outcome in outcomes)
    skipped = sum(outcome.skipped for outcome in outcomes)
    ran = len(outcomes) - skipped
    return (
        f"\n{identical} of {ran} scenarios identical"
        + (f", {skipped} skipped" if skipped else "")
        + f" in {seconds:.0f} s"
    )


def differing(outcomes: list[Outcome]) -> list[str]:
    return [outcome.scenario for outcome in outcomes if not outcome.identical and not outcome.skipped]
