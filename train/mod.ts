/**
 * VoCo pre-training (SwinUNETR-v2 backbone, VoCo losses, EMA teacher, MONAI export).
 * Not available yet: `deno task pretrain` says so. This module is where the model, the
 * sampler over the cache and the training loop will be exported from.
 *
 * @module
 */

/** Whether `deno task pretrain` can train yet. */
export const PRETRAIN_AVAILABLE = false;
