/**
 * Preprocessing: read CT volumes, apply MONAI-equivalent transforms, run a recipe and
 * fill the cache.
 *
 * @module
 */
export type { Mat4, Shape3, Volume, VoxelArray } from "./volume.ts";
export { voxelCount } from "./volume.ts";
export { type LoadedImage, readNifti } from "./read_nifti.ts";
export { formatOf, type Reader, type ReaderOptions, READERS, readImage } from "./read_image.ts";
export { writeNifti, type WriteNiftiOptions } from "./write_nifti.ts";
export {
  metaImageDataFile,
  type MetaImageHeader,
  parseMetaImageHeader,
  readMetaImage,
} from "./read_metaimage.ts";
export { writeMetaImage, type WriteMetaImageOptions } from "./write_metaimage.ts";
export {
  type DicomDataSet,
  type DicomSliceInfo,
  frameInfos,
  isDicomPart10,
  parseDicom,
  sliceInfo,
} from "./dicom_parse.ts";
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
} from "./dicom_codecs.ts";
export {
  brokenReason,
  type DicomFileInfo,
  type DicomSeriesGroup,
  groupDicomSeries,
  type SeriesGeometry,
  skipReason,
  SLICE_GAP_TOLERANCE,
  sortSlices,
} from "./dicom_series.ts";
export { DECODE_POOL_LIMITS, type ReadDicomOptions, readDicomSeries } from "./read_dicom.ts";
export { DECODER_LIMITS, DecodeWorkers, FrameDecoderPool } from "./frame_pool.ts";
export {
  type DicomElement,
  newUid,
  WRITE_SYNTAXES,
  writeDicomFile,
  type WriteDicomOptions,
  writeDicomSeries,
} from "./write_dicom.ts";
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
} from "./discover.ts";
export {
  DATALIST_ADAPTER,
  type DatasetAdapter,
  datasetAdapter,
  DATASETS,
  detectDataset,
  type FindOptions,
} from "./datasets.ts";
export { parseRecipe, readRecipeFile } from "./recipe_file.ts";
export {
  type CaseJob,
  type CaseOutcome,
  type CaseResources,
  processCase,
  sourceDigest,
  type StorageOptions,
} from "./process_case.ts";
export {
  type CaseReport,
  type PrepEvent,
  type PrepItem,
  type PrepSummary,
  runPrep,
  type RunPrepOptions,
} from "./run_prep.ts";
export { caseFingerprint, settingsHash, sha256Hex } from "./fingerprint.ts";
