/**
 * Preprocessing: read CT volumes, apply MONAI-equivalent transforms, run a recipe and
 * fill the cache.
 *
 * - `formats/`: image readers (NIfTI, MetaImage, and `formats/dicom/` for DICOM series)
 * - `transforms/`: the MONAI-equivalent transforms and their affine geometry
 * - `recipes/`: built-in and JSON recipes
 * - `pipeline/`: discovery, dataset adapters, the case worker and whole runs
 * - `synthetic/`: the phantom and the NIfTI, MetaImage and DICOM writers that tests, the
 *   demo and the benchmarks use
 *
 * @module
 */
export type { Mat4, Shape3, Volume, VoxelArray } from "./volume.ts";
export { voxelCount } from "./volume.ts";
export { type LoadedImage, readNifti } from "./formats/read_nifti.ts";
export {
  formatOf,
  type Reader,
  type ReaderOptions,
  READERS,
  readImage,
} from "./formats/read_image.ts";
export { writeNifti, type WriteNiftiOptions } from "./formats/write_nifti.ts";
export { caseToNifti, exportNifti, type ExportNiftiOptions } from "./formats/export_nifti.ts";
export {
  metaImageDataFile,
  type MetaImageHeader,
  parseMetaImageHeader,
  readMetaImage,
} from "./formats/read_metaimage.ts";
export { writeMetaImage, type WriteMetaImageOptions } from "./synthetic/write_metaimage.ts";
export {
  type DicomDataSet,
  type DicomSliceInfo,
  frameInfos,
  isDicomPart10,
  parseDicom,
  sliceInfo,
} from "./formats/dicom/dicom_parse.ts";
export {
  applyBitsStored,
  type CompressedEncoding,
  decodeFrame,
  decodePixels,
  type EncodedFrame,
  extractFrame,
  type FrameInfo,
  isCompressedSyntax,
  isEncodedFrame,
  type PixelArray,
  type PixelEncoding,
  TRANSFER_SYNTAXES,
} from "./formats/dicom/dicom_codecs.ts";
export {
  brokenReason,
  type DicomFileInfo,
  type DicomSeriesGroup,
  groupDicomSeries,
  type SeriesGeometry,
  skipReason,
  SLICE_GAP_TOLERANCE,
  sortSlices,
} from "./formats/dicom/dicom_series.ts";
export {
  DECODE_POOL_LIMITS,
  type ReadDicomOptions,
  readDicomSeries,
} from "./formats/dicom/read_dicom.ts";
export { DECODER_LIMITS, DecodeWorkers, FrameDecoderPool } from "./formats/dicom/frame_pool.ts";
export {
  type DicomElement,
  newUid,
  WRITE_SYNTAXES,
  writeDicomFile,
  type WriteDicomOptions,
  writeDicomSeries,
} from "./synthetic/write_dicom.ts";
export { gunzip, isGzip } from "./formats/decompress.ts";
export {
  axisOrientation,
  orientationCode,
  orientToRas,
  type PickOrder,
} from "./transforms/orient.ts";
export {
  type OutputGrid,
  type ResampleOptions,
  resampleToGrid,
  resampleToSpacing,
  spacingGrid,
} from "./transforms/resample.ts";
export { scaleIntensityRange, type WindowOptions } from "./transforms/window.ts";
export { type Box, cropToBox, foregroundBox, type ForegroundOptions } from "./transforms/crop.ts";
export { padGrid, type PadOptions, padToMinShape } from "./transforms/pad.ts";
export { resizeGrid, type ResizeOptions, resizeToShape } from "./transforms/resize.ts";
export {
  applyRecipe,
  type ApplyRecipeOptions,
  type Recipe,
  type RecipeOverrides,
  type RecipeResult,
  RECIPES,
  type RecipeStep,
  resolveRecipe,
  type Triple,
} from "./recipes/recipe.ts";
export { makePhantom, orientedAffine, type PhantomOptions } from "./synthetic/phantom.ts";
export {
  discoverCases,
  discoverInputs,
  type DiscoverOptions,
  type Discovery,
  findImages,
  type FindImagesOptions,
  type ScanProgress,
  type SkippedFile,
  type SourceCase,
  uniqueNames,
} from "./pipeline/discover.ts";
export {
  DATALIST_ADAPTER,
  type DatasetAdapter,
  datasetAdapter,
  DATASETS,
  detectDataset,
  type FindOptions,
} from "./pipeline/datasets.ts";
export { parseRecipe, readRecipeFile } from "./recipes/recipe_file.ts";
export {
  type CaseJob,
  type CaseOutcome,
  type CaseResources,
  processCase,
  sourceDigest,
  type StorageOptions,
} from "./pipeline/process_case.ts";
export {
  type CaseReport,
  type PrepEvent,
  type PrepItem,
  type PrepSummary,
  runPrep,
  type RunPrepOptions,
} from "./pipeline/run_prep.ts";
export {
  defaultDatasetName,
  type PlanGroup,
  planPrep,
  type PlanResult,
  type PrepPlan,
  type PrepRequest,
  runPlan,
  type RunPlanOptions,
  type StaleCase,
} from "./pipeline/plan.ts";
export { caseFingerprint, settingsHash, sha256Hex } from "../cache/format/fingerprint.ts";
