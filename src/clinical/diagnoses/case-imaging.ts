/**
 * The imaging step of a diagnosis (issue 13 §4): the versions the registry serves for this
 * diagnosis (active or, for its canary share, canary), the case's usable images' bytes, and the
 * imaging agent between them. Only a diagnosis with images comes here. Nothing in it fails the
 * diagnosis: an unreachable registry or runtime is a warning in the answer.
 */
import { runImaging, type CaseImage, type ImagingOutput } from '../../agents/imaging.js';
import type { BlobStore, ImagePreprocessor, ModelRuntime } from '../ports.js';
import { chooseVersions, type ServingModels } from '../models/serving.js';

export interface CaseImagingDeps {
  serving: ServingModels;
  runtime: ModelRuntime;
  preprocessor: ImagePreprocessor;
  blobs: BlobStore;
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
  const output = await runImaging(
    models,
    images,
    {
      infer: (model, inputs, opts) => deps.runtime.infer(model, inputs, opts),
      toTensor: (bytes, spec) => deps.preprocessor.toTensor(bytes, spec),
      bytes: (image) => deps.blobs.get(clinicId, image.sha256),
    },
    { budgetMs: deps.budgetMs },
  );
  return { output, warnings: output.warnings };
}
