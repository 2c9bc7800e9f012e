"""A champion that only improves: ``@champion`` moves to the run's recommender only when it beats
the current champion on the same validation rows; the loser gets ``@challenger``.

One asset, ``champion``, after the report: the one step that touches the aliases. It registers
the round the report selects (the training run's pyfunc model, ``MlflowResource.register_recommender``),
then ``judge`` compares it with the version behind ``@champion``:

- same data fingerprint (the same split, hence the same validation rows): the validation RMSE each
  version's fit recorded (mean over seeds, in stars, the registry's ``valid_rmse`` tag);
- another fingerprint (new data): both versions loaded from the registry and re-scored on this
  split's validation rows, with the selected round's explanation embeddings (an older champion
  gets those, not its own explainer's). A champion that cannot predict there is kept.

Ties keep the champion. The asset's check ``beats_champion`` records both numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from recpie_assets.resources import MlflowResource, RecpieResource
from recpie_core import store

CHECK = "beats_champion"


@dataclass(frozen=True)
class Verdict:
    candidate: str  # registry version of this run's recommender
    champion: str | None  # the version behind @champion before the step; None: there was none
    candidate_rmse: float | None  # validation RMSE (stars); None when there was nothing to compare with
    champion_rmse: float | None
    rows: str  # "recorded" (same fingerprint) | "rescored" (this split's validation rows) | "none"
    note: str = ""

    @property
    def promoted(self) -> bool:
        """The candidate holds @champion after the step: no champion yet, it was already, or its RMSE
        is strictly lower (a tie keeps the champion)."""
        if self.champion in (None, self.candidate):
            return True
        return self.champion_rmse is not None and self.candidate_rmse is not None and \
            self.candidate_rmse < self.champion_rmse

    def aliases(self) -> tuple[str, str | None]:
        """(@champion, @challenger) after the step."""
        if self.champion is None or self.champion == self.candidate:
            return self.candidate, None
        return (self.candidate, self.champion) if self.promoted else (self.champion, self.candidate)

    def metadata(self) -> dict:
        numbers = {"candidate_valid_rmse": self.candidate_rmse, "champion_valid_rmse": self.champion_rmse}
        return {"candidate_version": self.candidate, "champion_version": self.champion or "none",
                **{k: round(v, 4) for k, v in numbers.items() if v is not None}, "rows": self.rows,
                "promoted": self.promoted, **({"note": self.note} if self.note else {})}


def judge(mlflow: MlflowResource, candidate: str, split: Path, explanations: Path | None) -> Verdict:
    """Compare version ``candidate`` with ``@champion`` on the same validation rows (module docstring)."""
    champion = mlflow.alias_version("champion")
    if champion is None:
        return Verdict(candidate, None, None, None, "none", "no champion yet")
    if champion == candidate:
        return Verdict(candidate, champion, None, None, "none", "the candidate is the champion")
    tags = {v: mlflow.version_tags(v) for v in (candidate, champion)}
    fingerprint = tags[candidate].get("data_fingerprint")
    if fingerprint and fingerprint == tags[champion].get("data_fingerprint"):
        return Verdict(candidate, champion, float(tags[candidate]["valid_rmse"]), float(tags[champion]["valid_rmse"]),
                       "recorded")
    return _rescored(mlflow, candidate, champion, split, explanations)


def _rescored(mlflow: MlflowResource, candidate: str, champion: str, split: Path,
              explanations: Path | None) -> Verdict:
    from recpie_core.serving import rmse, validation_rows

    frame, stars = validation_rows(split, explanations)
    ours = rmse(mlflow.load_version(candidate).predict(frame), stars)
    try:
        theirs = rmse(mlflow.load_version(champion).predict(frame), stars)
    except Exception as exc:  # e.g. it reads explanations and this round has none: keep it
        return Verdict(candidate, champion, ours, None, "rescored", f"champion not scored here: {exc}")
    return Verdict(candidate, champion, ours, theirs, "rescored")


def build_champion_asset(rounds: int) -> dg.AssetsDefinition:
    """``champion``: the report's selected round against ``@champion``, aliases moved in this one step."""
    recommenders = [store.recommender(k) for k in range(rounds + 1)]
    explanations = {k: store.explanations(k) for k in range(1, rounds + 1)}
    ins = {n: dg.AssetIn(n) for n in ["user_temporal_split", *recommenders, *explanations.values()]}

    # a pool of its own (dagster.yaml: one step per pool at a time): two runs never move the aliases at once
    @dg.asset(ins=ins, deps=["evaluation_report"], kinds={"mlflow"}, group_name="report", pool="mlflow_registry",
              check_specs=[dg.AssetCheckSpec(CHECK, asset="champion", description=(
                  "The selected recommender beats @champion on the same validation rows (RMSE, stars); "
                  "when it does not, @champion stays and it becomes @challenger."))])
    def champion(recpie: RecpieResource, mlflow: MlflowResource, **upstream: Path) -> dg.MaterializeResult:
        """The registry's @champion: moved to this run's selected recommender only when it is better."""
        from recpie_core.report import selected_round

        k, _ = selected_round([upstream[n] for n in recommenders])
        version = mlflow.register_recommender(upstream[recommenders[k]], k, recpie.profile)
        verdict = judge(mlflow, version, upstream["user_temporal_split"],
                        upstream[explanations[k]] if k else None)
        mlflow.set_aliases(*verdict.aliases())
        meta = {**verdict.metadata(), "selected_round": k, "champion": verdict.aliases()[0],
                "model_uri": f"models:/{mlflow.model_name}@champion"}
        return dg.MaterializeResult(metadata=meta, check_results=[dg.AssetCheckResult(
            check_name=CHECK, passed=verdict.promoted, severity=dg.AssetCheckSeverity.WARN,
            metadata=verdict.metadata())])

    return champion
