/**
 * VoCo toolkit: turn CT collections into a compact, resampled Zarr v3 cache that
 * reproduces MONAI's VoCo preprocessing, and pre-train a SwinUNETR-v2 backbone
 * on it.
 *
 * @example Preprocess one volume in memory
 * ```ts ignore
 * import { applyRecipe, readNifti, resolveRecipe } from "./mod.ts";
 * const image = readNifti(await Deno.readFile("ct.nii.gz"));
 * const { volume } = applyRecipe(image.volume, resolveRecipe("voco-v2"));
 * console.log(volume.shape, volume.affine);
 * ```
 *
 * @module
 */
export * from "./prep/mod.ts";
export * from "./cache/mod.ts";
export * from "./train/mod.ts";
