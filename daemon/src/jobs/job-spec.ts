// What a job was asked to do, fixed at submit time and stored with the job (and as job.json).
import type { Backend, AwsRenderOptions, Dependency } from '../../../protocol/generated/protocol.js';

export interface JobSpec {
  jobId: string;
  backend: Backend;
  /** The file uploaded as the scene (a temporary copy when submitted from Blender). */
  blendFile: string;
  /** Where the scene lives for the user: decides its place in the project tree. */
  sourceBlendFile: string;
  projectRoot: string;
  temporaryBlend: boolean;
  scene: string;
  frames: number[];
  framesSpec: string;
  chunkSize: number;
  /** Every frame renders as `parts` parts of its `samples` (issue #17; AWS only). */
  split?: { parts: number; samples: number };
  outputDir: string;
  filePattern: string;
  fileExtension: string;
  dependencies: Dependency[];
  aws?: AwsRenderOptions;
}
