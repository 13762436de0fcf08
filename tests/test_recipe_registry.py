"""The recipe registry: every kind of run is one entry, and its facts are read from there."""

import dataclasses

import pytest

from supcon_utils import recipes, training


def test_every_kind_is_one_entry_and_unknown_kinds_are_refused():
    assert training.KINDS == recipes.KINDS == ("supcon", "cross_entropy", "hybrid", "finetune",
                                               "moco")  # fmt: skip
    with pytest.raises(ValueError, match=r"unknown kind 'simclr'; expected one of \('supcon'"):
        recipes.get("simclr")


def test_a_runs_identity_leaves_out_only_other_recipes_own_fields():
    fields = {f.name for f in dataclasses.fields(training.Config)}
    for kind, recipe in recipes.RECIPES.items():
        assert set(recipe.own_fields) <= fields, kind
        ignored = set(recipes.ignored_fields(kind)) - set(recipes.RETIRED_FIELDS)
        assert not ignored & set(recipe.own_fields)
        assert ignored | set(recipe.own_fields) == {
            f for r in recipes.RECIPES.values() for f in r.own_fields
        }
    assert "supcon_weight" in recipes.ignored_fields("supcon")
    assert "queue_size" not in recipes.ignored_fields("moco")


@pytest.mark.parametrize("kind", ["supcon", "cross_entropy", "hybrid", "moco"])
def test_each_recipe_builds_its_compiled_model_and_parts(kind):
    cfg = training.config("quick", dataset="digits", batch_size=16)
    built = recipes.get(kind).build(cfg, (8, 8, 1), 10, 256, None)
    assert built.model.compiled
    recipe = recipes.get(kind)
    assert ("projection_head" in built.parts) == recipe.contrastive
    assert ("classifier" in built.parts) == (not recipe.probe)
    assert built.n_views == (cfg.n_views if recipe.contrastive else 1)


def test_recipes_refuse_what_they_cannot_train():
    with pytest.raises(ValueError, match="use_labels=False .SimCLR. needs a contrastive kind"):
        recipes.check("cross_entropy", training.config("quick", use_labels=False))
    with pytest.raises(ValueError, match="contrast_mode must be 'all'"):
        recipes.check("moco", training.config("quick", contrast_mode="one"))
    recipes.check("finetune", training.config("quick", use_labels=False))  # its supcon stage's
