/**
 * The imaging step of a diagnosis (issue 13 §4): the versions the registry serves for this
 * diagnosis (active or, for its canary share, canary), the case's usable images prepared as each
 * model's input spec says, and the imaging agent between them. Only a diagnosis with images comes
 * here. Nothing in it fails the diagnosis: an unreachable registry or runtime is a warning in the
 * answer.
 *
 * Prepared images come from the tensor cache (image-tensor-cache.ts), keyed by this clinic, the
 * bytes' hash and the input spec. It is asked only here, for images the diagnosis service has
 * already found among this clinic's live media (a read under the clinic's row-level security,
 * before this step): a media id of another clinic is refused with 422 before any lookup.
 */
import { ImageBytesUnavailable, runImaging, type CaseImage, type ImagingOutput } from '../../agents/imaging.js';
import type { BlobStore, ImagePreprocessor, ModelRuntime } from '../ports.js';
import { chooseVersions, type ServingModels } from '../models/serving.js';
import type { ImageTensorCache } from './image-tensor-cache.js';

export interface CaseImagingDeps {
  serving: ServingModels;
  runtime: ModelRuntime;
  preprocessor: ImagePreprocessor;
  blobs: BlobStore;
  /** Prepared images, shared by the diagnoses of this process (AGENTICPET_IMAGE_TENSOR_CACHE_MB). */
  tensors: ImageTensorCache;
  /** Milliseconds for every model on every image of one diagnosis (AGENTICPET_IMAGING_BUDGET_MS). */
  budgetMs: number;
}

/** Null when no model serves (nothing ran); else what the agent read, with its warnings. */
export async function readCaseImages(deps: CaseImagingDeps, clinicId: string, images: CaseImage[], diagnosisId: string): Promise<{ output: ImagingOutput | null; warnings: string[] }> {
  let serving;
  try {
    serving = await deps.serving.current();
  } catch (err) {
    return { output: null, warnings: [`model registry unreachable (${(err as Error).message}): images not interpreted`] };
  }
  const models = chooseVersions(serving, diagnosisId);
  if (models.length === 0) return { output: null, warnings: [] };
  // On a miss, an image's bytes are fetched once for this diagnosis however many specs want them.
  const fetched = new Map<string, Promise<Buffer | null>>();
  const bytesOf = (sha256: string): Promise<Buffer | null> => {
    let bytes = fetched.get(sha256);
    if (bytes === undefined) {
      bytes = deps.blobs.get(clinicId, sha256).catch((err: unknown) => {
        throw new ImageBytesUnavailable((err as Error).message);
      });
      fetched.set(sha256, bytes);
    }
    return bytes;
  };
  const output = await runImaging(
    models,
    images,
    {
      infer: (model, inputs, opts) => deps.runtime.infer(model, inputs, opts),
      tensor: (image, spec) =>
        deps.tensors.get(clinicId, image.sha256, spec, async () => {
          const bytes = await bytesOf(image.sha256);
          return bytes === null ? null : deps.preprocessor.toTensor(bytes, spec);
        }),
    },
    { budgetMs: deps.budgetMs },
  );
  return { output, warnings: output.warnings };
}
