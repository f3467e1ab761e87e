/**
 * Preprocessing: read CT volumes, apply MONAI-equivalent transforms, run a recipe and
 * fill the cache.
 *
 * @module
 */
export type { Mat4, Shape3, Volume, VoxelArray } from "./volume.ts";
export { voxelCount } from "./volume.ts";
export { type LoadedImage, readNifti } from "./read_nifti.ts";
export { formatOf, type Reader, READERS, readImage } from "./read_image.ts";
export { writeNifti, type WriteNiftiOptions } from "./write_nifti.ts";
export { gunzip, isGzip } from "./decompress.ts";
export { axisOrientation, orientationCode, orientToRas } from "./orient.ts";
export {
  type OutputGrid,
  type ResampleOptions,
  resampleToGrid,
  resampleToSpacing,
  spacingGrid,
} from "./resample.ts";
export { scaleIntensityRange, type WindowOptions } from "./window.ts";
export { type Box, cropToBox, foregroundBox, type ForegroundOptions } from "./crop.ts";
export { type PadOptions, padToMinShape } from "./pad.ts";
export { type ResizeOptions, resizeToShape } from "./resize.ts";
export {
  applyRecipe,
  type Recipe,
  type RecipeOverrides,
  type RecipeResult,
  RECIPES,
  type RecipeStep,
  resolveRecipe,
  type Triple,
} from "./recipe.ts";
export { makePhantom, orientedAffine, type PhantomOptions } from "./phantom.ts";
export { discoverCases, type DiscoverOptions, type SourceCase } from "./discover.ts";
export {
  type CaseJob,
  type CaseOutcome,
  processCase,
  type StorageOptions,
} from "./process_case.ts";
export {
  type CaseReport,
  type PrepEvent,
  type PrepSummary,
  runPrep,
  type RunPrepOptions,
} from "./run_prep.ts";
export { caseFingerprint, settingsHash, sha256Hex } from "./fingerprint.ts";
