// What a run finds in the dataset groups it writes to: cached cases none of its inputs
// give any more (their source is gone), and cases made with another recipe.
import { readGroup } from "../../cache/write/cache_dir.ts";
import type { Recipe } from "../recipes/recipe.ts";
import { canonicalJson } from "../../cache/format/fingerprint.ts";

/** A case of the run, as far as its group is concerned: its dataset, name and recipe. */
export interface GroupItem {
  /** Dataset group. */
  dataset: string;
  /** Case name. */
  name: string;
  /** The recipe the run applies to it. */
  recipe: Recipe;
}

/** A cached case, named with where it came from. */
export interface CachedCase {
  /** Case name. */
  name: string;
  /** Its `source` attribute (path relative to its dataset root), when readable. */
  source?: string;
  /** Name of the recipe it was made with, when readable. */
  recipe?: string;
}

/** One dataset group of a run, compared with what the cache holds. */
export interface GroupState {
  /** Dataset group. */
  dataset: string;
  /** Names of the recipes the run applies in this group. */
  recipes: string[];
  /** Cached cases the run's inputs no longer give (source removed, renamed, or not given). */
  stale: CachedCase[];
  /** Cached cases made with another recipe (or another version of it) that the run rewrites. */
  replaced: CachedCase[];
  /** Cached cases made with another recipe that the run leaves as they are (stale ones). */
  kept: CachedCase[];
}

/**
 * Compares each dataset group of a run with the cache at `root`: which cached cases the
 * run's inputs do not give, and which were made with a recipe other than the run's (the
 * whole recipe is compared, steps included, so an edited recipe file counts as another).
 * Groups not yet in the cache have nothing stale or replaced.
 */
export async function groupStates(
  root: string,
  items: readonly GroupItem[],
): Promise<GroupState[]> {
  const byGroup = new Map<string, GroupItem[]>();
  for (const it of items) byGroup.set(it.dataset, [...byGroup.get(it.dataset) ?? [], it]);
  const states: GroupState[] = [];
  for (const [dataset, group] of byGroup) {
    const recipeOf = new Map(group.map((it) => [it.name, canonicalJson(it.recipe)]));
    const runRecipes = new Set(recipeOf.values());
    const state: GroupState = {
      dataset,
      recipes: [...new Set(group.map((it) => it.recipe.name))],
      stale: [],
      replaced: [],
      kept: [],
    };
    for (const c of await readGroup(root, dataset)) {
      const a = c.attributes;
      const cached: CachedCase = {
        name: c.name,
        source: typeof a?.source === "string" ? a.source : undefined,
        recipe: typeof (a?.recipe as Recipe | undefined)?.name === "string"
          ? (a!.recipe as Recipe).name
          : undefined,
      };
      const mine = recipeOf.get(c.name);
      if (mine === undefined) state.stale.push(cached);
      if (!a?.recipe) continue; // unreadable metadata: rebuilt when in the run
      const theirs = canonicalJson(a.recipe);
      if (mine !== undefined && theirs !== mine) state.replaced.push(cached);
      if (mine === undefined && !runRecipes.has(theirs)) state.kept.push(cached);
    }
    states.push(state);
  }
  return states;
}
