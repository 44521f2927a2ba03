"""In-memory repositories of the models service, behind a fake unit of work (the handler tier)."""
from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from services.kit.unit_of_work import Recorded
from services.models.domain import Alias, AliasMove, AliasTarget, Model, NewModel, UndoableMove
from tests.support.fakes import FakeUnitOfWork, FakeUnitOfWorks


@dataclass
class StoredMove:
    move: AliasMove
    app_id: str
    alias: str
    undone: bool = False


@dataclass
class State:
    """What the database would hold: models (with their lease owner and metrics), aliases, their history,
    the Apps' owners."""

    models: dict[str, Model] = field(default_factory=dict)
    added: dict[str, NewModel] = field(default_factory=dict)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    leases: dict[str, str] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    aliases: dict[tuple[str, str], str] = field(default_factory=dict)
    moves: list[StoredMove] = field(default_factory=list)
    owners: dict[str, tuple[str | None, datetime]] = field(default_factory=dict)  # app → (owner, as of)
    sequence: Any = field(default_factory=lambda: itertools.count(1))

    def history(self, app_id: str, alias: str) -> list[tuple[str, str | None, str, bool]]:
        """(action, from, to, undone) of an alias's moves, oldest first."""
        return [(m.move.action, m.move.from_model_id, m.move.to_model_id, m.undone) for m in self.moves
                if (m.app_id, m.alias) == (app_id, alias)]


class FakeModels:
    def __init__(self, state: State, uow: FakeUnitOfWork) -> None:
        self._state, self._uow = state, uow

    async def add(self, model: NewModel) -> int | None:
        if any(m.workload_id == model.workload_id for m in self._state.models.values()):
            return None
        version = self._state.versions.get(model.app_id, 0) + 1
        self._state.versions[model.app_id] = version
        self._state.added[model.model_id] = model
        self._state.metrics[model.model_id] = model.metrics
        self._state.models[model.model_id] = Model(model.model_id, model.workload_id, model.app_id, version,
                                                   model.artifacts)
        return version

    async def leased(self, model_id: str, owner: str) -> Model | None:
        model = self._state.models.get(model_id)
        if model is None or model.status != "pending" or self._state.leases.get(model_id) != owner:
            return None
        return self._uow.track(copy.deepcopy(model))

    async def save(self, model: Model) -> None:
        self._state.models[model.model_id] = replace(model, events=[])
        self._state.leases.pop(model.model_id, None)

    async def target(self, model_id: str) -> AliasTarget | None:
        model = self._state.models.get(model_id)
        if model is None:
            return None
        return AliasTarget(model.model_id, model.app_id, model.version, model.status,
                           self._state.metrics.get(model_id, {}))


class FakeAliases:
    def __init__(self, state: State, uow: FakeUnitOfWork) -> None:
        self._state, self._uow = state, uow

    async def get(self, app_id: str, name: str, *, undoable: bool = False) -> Alias:
        current = self._state.aliases.get((app_id, name))
        last = None
        if undoable and current is not None:
            candidates = [m for m in self._state.moves if (m.app_id, m.alias) == (app_id, name)
                          and m.move.action == "move" and not m.undone]
            if candidates:
                last = UndoableMove(candidates[-1].move.sequence, candidates[-1].move.from_model_id)
        return self._uow.track(Alias(app_id=app_id, name=name, model_id=current,
                                     next_sequence=next(self._state.sequence), last_move=last))

    async def save(self, alias: Alias) -> None:
        for move in alias.moves:
            for stored in self._state.moves:
                if stored.move.sequence == move.undoes:
                    stored.undone = True
            self._state.aliases[(alias.app_id, alias.name)] = move.to_model_id
            self._state.moves.append(StoredMove(move, alias.app_id, alias.name))
        alias.moves = []


class FakeAppOwners:
    def __init__(self, state: State) -> None:
        self._state = state

    async def remember(self, app_id: str, owner: str | None, as_of: datetime) -> None:
        known = self._state.owners.get(app_id)
        if known is None or known[1] <= as_of:  # a late, older event never overwrites a newer one
            self._state.owners[app_id] = (owner, as_of)

    async def get(self, app_id: str) -> str | None:
        return self._state.owners.get(app_id, (None, None))[0]


class FakeModelsUnitOfWork(FakeUnitOfWork):
    """Writes go to the shared State at once and are undone when the unit ends without committing."""

    not_rolled_back = ("sequence",)

    def __init__(self, state: State, published: list[Recorded] | None = None, *, cause: Any = None) -> None:
        super().__init__(published, cause=cause, state=state)
        self.models = FakeModels(state, self)
        self.aliases = FakeAliases(state, self)
        self.owners = FakeAppOwners(state)


def unit_of_works(state: State) -> FakeUnitOfWorks:
    return FakeUnitOfWorks(lambda published, cause=None: FakeModelsUnitOfWork(state, published, cause=cause))

