"""Edit recipes: which blocks and projections to prune, and how much curvature mass to keep.

blocks: [10, 11, 12]
projections: [gate, up, down]
keep_mass: 0.6
overrides:
  12: {keep_mass: 0.8, projections: [gate, up]}
"""

import json
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lethe.edits.architectures import Projection
from lethe.edits.errors import InvalidArgument, NotFound, explain


class BlockOverride(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    keep_mass: float | None = Field(None, gt=0, le=1, description="Curvature mass kept, in (0, 1].")
    projections: list[Projection] | None = Field(None, min_length=1)


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    blocks: list[int] = Field(min_length=1, description="Transformer blocks to edit.")
    projections: list[Projection] = Field(
        default=["gate", "up", "down"], min_length=1, description="MLP projections to edit."
    )
    keep_mass: float = Field(gt=0, le=1, description="Fraction rho of curvature mass kept, in (0, 1].")
    overrides: dict[int, BlockOverride] = Field(default_factory=dict, description="Per-block changes.")

    @classmethod
    def from_file(cls, path: Path) -> "Recipe":
        if not path.is_file():
            raise NotFound(f"recipe {path} does not exist")
        text = path.read_text()
        try:
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as error:
            raise InvalidArgument(f"recipe {path} is not valid YAML/JSON: {error}") from None
        return cls.parse(data, source=str(path))

    @classmethod
    def parse(cls, data: object, source: str = "recipe") -> "Recipe":
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            raise InvalidArgument(f"{source} is invalid: {explain(error, top='recipe')}") from None

    def targets(self) -> list["EditTarget"]:
        stray = sorted(set(self.overrides) - set(self.blocks))
        if stray:
            raise InvalidArgument(f"overrides name blocks {stray} that are not in blocks {self.blocks}")
        targets = []
        for block in sorted(set(self.blocks)):
            override = self.overrides.get(block, BlockOverride())
            keep = override.keep_mass if override.keep_mass is not None else self.keep_mass
            for projection in override.projections or self.projections:
                targets.append(EditTarget(block, projection, keep))
        return targets


@dataclass(frozen=True)
class EditTarget:
    block: int
    projection: Projection
    keep_mass: float
