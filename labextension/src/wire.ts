/* eslint-disable */
/**
 * GENERATED FILE, DO NOT EDIT. The wire types of batchnb's REST API (/batchnb/api/),
 * from the pydantic models in batchnb/server/models/ (GET /batchnb/api/schema).
 * Regenerate with `python scripts/gen_wire_types.py`; tests/test_wire_types.py checks it.
 */

/**
 * A job of any kind, told apart by ``type``: ``batch``, ``pipeline`` or ``command`` (a pipeline's step).
 */
export type AnyJob = Job | PipelineJob | StepJob;

/**
 * Every wire model of the API by name (an index; the API never sends this object).
 */
export interface WireModels {
  AnyJob?: AnyJob;
  BatchDeployment?: BatchDeployment;
  BatchEndpoint?: BatchEndpoint;
  BatchEndpointDefaults?: BatchEndpointDefaults;
  BatchEndpointSpec?: BatchEndpointSpec;
  CodeConfiguration?: CodeConfiguration;
  ColumnAgreement?: ColumnAgreement;
  CompareRequest?: CompareRequest;
  Comparison?: Comparison;
  ComparisonThroughput?: ComparisonThroughput;
  Component?: Component;
  ComponentList?: ComponentList;
  ComponentRef?: ComponentRef;
  Compute?: Compute;
  ComputeList?: ComputeList;
  CreatePipelineJob?: CreatePipelineJob;
  DeploymentList?: DeploymentList;
  DifferenceHistogram?: DifferenceHistogram;
  Disagreement?: Disagreement;
  DryRunResult?: DryRunResult;
  EndpointDefaults?: EndpointDefaults;
  EndpointDefaultsPatch?: EndpointDefaultsPatch;
  EndpointList?: EndpointList;
  EndpointPatch?: EndpointPatch;
  ErrorResponse?: ErrorResponse;
  FailedItem?: FailedItem;
  InlineModel?: InlineModel;
  InputRef?: InputRef;
  InvokeRequest?: InvokeRequest;
  ItemCounts?: ItemCounts;
  Job?: Job;
  JobFailures?: JobFailures;
  JobGroup?: JobGroup;
  JobInput?: JobInput;
  JobLineage?: JobLineage;
  JobList?: JobList;
  JobLogs?: JobLogs;
  JobOutput?: JobOutput;
  JobOutputs?: JobOutputs;
  JobOverview?: JobOverview;
  JobProgress?: JobProgress;
  JobPromotion?: JobPromotion;
  JobReuse?: JobReuse;
  JobStep?: JobStep;
  JobSummary?: JobSummary;
  JobTimeline?: JobTimeline;
  LabelPair?: LabelPair;
  LogTail?: LogTail;
  MiniBatchCounts?: MiniBatchCounts;
  Model?: Model;
  ModelBatchDeploymentSpec?: ModelBatchDeploymentSpec;
  ModelDeploymentSettings?: ModelDeploymentSettings;
  ModelList?: ModelList;
  ModelSpec?: ModelSpec;
  OutputFile?: OutputFile;
  OutputPreview?: OutputPreview;
  OutputRef?: OutputRef;
  PipelineComponentBatchDeploymentSpec?: PipelineComponentBatchDeploymentSpec;
  PipelineDeploymentSettings?: PipelineDeploymentSettings;
  PipelineDryRunResult?: PipelineDryRunResult;
  PipelineInput?: PipelineInput;
  PipelineJob?: PipelineJob;
  PipelineJobProgress?: PipelineJobProgress;
  PipelineOutput?: PipelineOutput;
  PipelineStep?: PipelineStep;
  Resources?: Resources;
  RetrySettings?: RetrySettings;
  StepCounts?: StepCounts;
  StepJob?: StepJob;
  StepJobProgress?: StepJobProgress;
  StepLimits?: StepLimits;
  TimelinePoint?: TimelinePoint;
  WorkerAttempt?: WorkerAttempt;
  WorkerTimeline?: WorkerTimeline;
  WorkspaceInfo?: WorkspaceInfo;
}
/**
 * A batch job with its live counters.
 */
export interface Job {
  name: string;
  status:
    | 'Queued'
    | 'Preparing'
    | 'Running'
    | 'Finalizing'
    | 'Completed'
    | 'Failed'
    | 'CancelRequested'
    | 'Canceled'
    | 'Interrupted';
  endpoint_name?: string | null;
  deployment_name?: string | null;
  experiment_name?: string | null;
  /**
   * The Jupyter user name when invoked through REST.
   */
  invoked_by?: string | null;
  created_at: number;
  started_at?: number | null;
  ended_at?: number | null;
  error?: string | null;
  /**
   * When the job was archived (left out of listings).
   */
  archived_at?: number | null;
  job_dir: string;
  logs_dir: string;
  type: 'batch';
  inputs: {
    [k: string]: JobInput;
  };
  outputs: {
    [k: string]: JobOutput;
  };
  settings: {
    [k: string]: unknown;
  };
  /**
   * The deployment's revision the job runs.
   */
  deployment_revision?: number | null;
  /**
   * The model version it scores with.
   */
  model?:
    | string
    | {
        [k: string]: unknown;
      }
    | null;
  compute?: string;
  instance_count: number;
  workers: number;
  progress: JobProgress;
  /**
   * Each metric's last value in the job's MLflow run ({} without one); only on a single job's GET.
   */
  metrics?: {
    [k: string]: number;
  } | null;
  /**
   * None for a job invoked before lineage was recorded.
   */
  lineage?: JobLineage | null;
  /**
   * Only for an incremental invocation.
   */
  incremental?: JobReuse | null;
  /**
   * Why a Queued job has not started yet.
   */
  waiting?: string | null;
  /**
   * How many times its compute's agent resumed it by itself.
   */
  auto_resumes?: number;
  [k: string]: unknown;
}
export interface JobInput {
  type: string;
  path: string;
  [k: string]: unknown;
}
export interface JobOutput {
  path: string;
  file_name: string;
  [k: string]: unknown;
}
export interface JobProgress {
  mini_batches: MiniBatchCounts;
  items: ItemCounts;
  rows_written: number;
  worker_seconds: number;
  rows_per_second: number;
  elapsed_s: number;
  eta_s?: number | null;
  [k: string]: unknown;
}
export interface MiniBatchCounts {
  total: number;
  done: number;
  failed: number;
  running: number;
  retrying: number;
  pending: number;
  [k: string]: unknown;
}
export interface ItemCounts {
  total: number;
  succeeded: number;
  failed: number;
  [k: string]: unknown;
}
/**
 * What produced a batch job's output (recorded at invoke).
 */
export interface JobLineage {
  endpoint: string;
  deployment: string;
  deployment_revision: number;
  /**
   * The model as name:version.
   */
  model?: string | null;
  /**
   * sha256 of the code snapshot the job runs.
   */
  code_hash?: string | null;
  /**
   * The declared environment: name:version, or inline.
   */
  environment?: string | null;
  environment_hash?: string | null;
  runtime: string;
  /**
   * The lineage columns of every output row ([] when the output has none).
   */
  row_lineage_columns: string[];
  /**
   * Equal for jobs whose rows an incremental invocation may reuse.
   */
  scoring_key: string;
  [k: string]: unknown;
}
/**
 * What an incremental invocation reused from earlier jobs.
 */
export interface JobReuse {
  mini_batches_reused: number;
  items_reused: number;
  rows_reused: number;
  mini_batches_to_score: number;
  items_to_score: number;
  reused_from: string[];
  [k: string]: unknown;
}
/**
 * A pipeline job: its steps, in order, with their statuses, and its named outputs.
 */
export interface PipelineJob {
  name: string;
  status:
    | 'Queued'
    | 'Preparing'
    | 'Running'
    | 'Finalizing'
    | 'Completed'
    | 'Failed'
    | 'CancelRequested'
    | 'Canceled'
    | 'Interrupted';
  endpoint_name?: string | null;
  deployment_name?: string | null;
  experiment_name?: string | null;
  /**
   * The Jupyter user name when invoked through REST.
   */
  invoked_by?: string | null;
  created_at: number;
  started_at?: number | null;
  ended_at?: number | null;
  error?: string | null;
  /**
   * When the job was archived (left out of listings).
   */
  archived_at?: number | null;
  job_dir: string;
  logs_dir: string;
  type: 'pipeline';
  display_name?: string | null;
  inputs: {
    [k: string]: PipelineInput;
  };
  outputs: {
    [k: string]: PipelineOutput;
  };
  settings: {
    [k: string]: unknown;
  };
  component?: ComponentRef | null;
  steps: JobStep[];
  progress: PipelineJobProgress;
  /**
   * Each metric's last value in the job's MLflow run ({} without one); only on a single job's GET.
   */
  metrics?: {
    [k: string]: number;
  } | null;
  [k: string]: unknown;
}
/**
 * A data input (``path`` as given, ``resolved`` the local path or URL) or a literal ``value``.
 */
export interface PipelineInput {
  type: string;
  path?: string | null;
  resolved?: string | null;
  value?: {
    [k: string]: unknown;
  };
  [k: string]: unknown;
}
export interface PipelineOutput {
  type: string;
  path: string;
  [k: string]: unknown;
}
/**
 * The registered component a job runs (``name`` is null for steps written inline).
 */
export interface ComponentRef {
  name?: string | null;
  version?: string | null;
  [k: string]: unknown;
}
/**
 * One step of a pipeline job; ``job_name`` is its step (child) job.
 */
export interface JobStep {
  name: string;
  job_name: string;
  status:
    | 'Queued'
    | 'Preparing'
    | 'Running'
    | 'Finalizing'
    | 'Completed'
    | 'Failed'
    | 'CancelRequested'
    | 'Canceled'
    | 'Interrupted'
    | 'NotStarted';
  /**
   * The steps whose outputs it reads: it starts when they have completed.
   */
  needs: string[];
  duration_s?: number | null;
  error?: string | null;
  /**
   * Each metric's last value in the step's MLflow run; only on a single job's GET.
   */
  metrics?: {
    [k: string]: number;
  } | null;
  [k: string]: unknown;
}
export interface PipelineJobProgress {
  steps: StepCounts;
  elapsed_s: number;
  [k: string]: unknown;
}
/**
 * How many of a pipeline job's steps are in each state.
 */
export interface StepCounts {
  total: number;
  completed: number;
  running: number;
  failed: number;
  canceled: number;
  not_started: number;
  [k: string]: unknown;
}
/**
 * A step of a pipeline job (a child job): its command and log. Listed with ``GET jobs?parent=<job>``.
 */
export interface StepJob {
  name: string;
  status:
    | 'Queued'
    | 'Preparing'
    | 'Running'
    | 'Finalizing'
    | 'Completed'
    | 'Failed'
    | 'CancelRequested'
    | 'Canceled'
    | 'Interrupted'
    | 'NotStarted';
  endpoint_name?: string | null;
  deployment_name?: string | null;
  experiment_name?: string | null;
  /**
   * The Jupyter user name when invoked through REST.
   */
  invoked_by?: string | null;
  created_at: number;
  started_at?: number | null;
  ended_at?: number | null;
  error?: string | null;
  /**
   * When the job was archived (left out of listings).
   */
  archived_at?: number | null;
  job_dir: string;
  logs_dir: string;
  type: 'command';
  display_name?: string | null;
  parent_job_name: string;
  step: string;
  component?: ComponentRef | null;
  command: string;
  compute: string;
  needs: string[];
  inputs: {
    [k: string]: PipelineInput;
  };
  outputs: {
    [k: string]: PipelineOutput;
  };
  progress: StepJobProgress;
  /**
   * The command's output (stdout and stderr).
   */
  std_log: string;
  /**
   * Each metric's last value in the job's MLflow run ({} without one); only on a single job's GET.
   */
  metrics?: {
    [k: string]: number;
  } | null;
  [k: string]: unknown;
}
export interface StepJobProgress {
  elapsed_s: number;
  [k: string]: unknown;
}
/**
 * A deployment of a batch endpoint (the stored spec plus what was resolved when it was created).
 */
export interface BatchDeployment {
  name: string;
  endpoint_name: string;
  type: 'model' | 'pipeline';
  description?: string | null;
  tags?: {
    [k: string]: string;
  };
  model?:
    | string
    | {
        [k: string]: unknown;
      }
    | null;
  code_configuration?: {
    [k: string]: unknown;
  } | null;
  compute?: string | null;
  resources?: {
    [k: string]: unknown;
  } | null;
  settings?: {
    [k: string]: unknown;
  };
  resolved?: {
    [k: string]: unknown;
  };
  revision: number;
  is_default: boolean;
  provisioning_state: string;
  created_at: number;
  updated_at: number;
  [k: string]: unknown;
}
/**
 * A batch endpoint. ``scoring_uri`` is its invocation URL (``POST``), stable across default changes.
 */
export interface BatchEndpoint {
  name: string;
  description?: string | null;
  tags?: {
    [k: string]: string;
  };
  properties?: {
    [k: string]: unknown;
  };
  auth_mode?: string;
  defaults?: BatchEndpointDefaults;
  deployments: string[];
  scoring_uri: string;
  provisioning_state: string;
  created_at: number;
  updated_at: number;
  [k: string]: unknown;
}
export interface BatchEndpointDefaults {
  deployment_name?: string | null;
  [k: string]: unknown;
}
/**
 * ``batchEndpoint.schema.json``.
 */
export interface BatchEndpointSpec {
  $schema?: string | null;
  name: string;
  description?: string | null;
  tags?: {
    [k: string]: string;
  };
  properties?: {
    [k: string]: unknown;
  };
  auth_mode?: 'aad_token';
  defaults?: EndpointDefaults;
  location?: string | null;
}
/**
 * ``defaults`` of a batch endpoint.
 */
export interface EndpointDefaults {
  $schema?: string | null;
  deployment_name?: string | null;
}
/**
 * ``code_configuration``: the scoring script folder and file.
 */
export interface CodeConfiguration {
  $schema?: string | null;
  code: string;
  scoring_script: string;
}
/**
 * How A and B agree on one column.
 */
export interface ColumnAgreement {
  /**
   * The share of joined rows whose values are equal.
   */
  equal: number;
  mean_abs_diff?: number | null;
  max_abs_diff?: number | null;
  histogram?: DifferenceHistogram | null;
  /**
   * Labels: the most frequent pairs.
   */
  pairs?: LabelPair[] | null;
  [k: string]: unknown;
}
/**
 * The absolute differences of a numeric column where A and B differ, binned from 0 to the largest.
 */
export interface DifferenceHistogram {
  /**
   * Rows whose values are equal (not in the bins).
   */
  zero: number;
  edges: number[];
  counts: number[];
  [k: string]: unknown;
}
/**
 * One (A, B) pair of values of a column of labels and how many rows have it.
 */
export interface LabelPair {
  a: string;
  b: string;
  rows: number;
  [k: string]: unknown;
}
/**
 * ``POST endpoints/<name>/compare``: score one input with two deployments and compare the outputs.
 *
 * The two jobs run one after the other; the answer comes when both have ended and their outputs
 * are joined (see ``batchnb batch-endpoint compare``).
 */
export interface CompareRequest {
  /**
   * The two deployments, A and B.
   *
   * @minItems 2
   * @maxItems 2
   */
  deployments: [string, string];
  /**
   * The input, as an invocation takes it.
   */
  input: string | InputRef;
  input_type?: ('uri_folder' | 'uri_file') | null;
  /**
   * Score only the first N items (files, or rows).
   */
  sample?: number | null;
  /**
   * How many disagreements to list.
   */
  max_disagreements?: number;
}
/**
 * An input given as ``{type, path}``, as in Azure's ``inputs.yml``.
 */
export interface InputRef {
  type?: ('uri_folder' | 'uri_file') | null;
  path: string;
  [k: string]: unknown;
}
/**
 * The comparison of two deployments on one input.
 */
export interface Comparison {
  endpoint: string;
  deployments: string[];
  input: string;
  sample: number | null;
  /**
   * Each output's rows, the joined rows, the rows only one side has.
   */
  rows: {
    [k: string]: number;
  };
  /**
   * The share of joined rows equal on every column.
   */
  agreement: number;
  columns: {
    [k: string]: ColumnAgreement;
  };
  columns_only_in: {
    [k: string]: string[];
  };
  rows_disagreeing: number;
  disagreements: Disagreement[];
  throughput: {
    [k: string]: ComparisonThroughput;
  };
  outputs: {
    [k: string]: string;
  };
  [k: string]: unknown;
}
/**
 * A row where A and B differ on a column (``column`` "(row)": the row is in one output only); the
 * two values are under the deployments' names.
 */
export interface Disagreement {
  source_file: string | null;
  source_row: number | null;
  column: string;
  [k: string]: unknown;
}
/**
 * One deployment's job in the comparison and its pace.
 */
export interface ComparisonThroughput {
  job: string;
  items: number;
  rows: number;
  elapsed_s: number;
  items_per_second: number | null;
  rows_per_second: number | null;
  [k: string]: unknown;
}
/**
 * A registered component version (command or pipeline), resolved when it was registered.
 */
export interface Component {
  id: string;
  name: string;
  version: string;
  type: 'command' | 'pipeline';
  display_name?: string | null;
  description?: string | null;
  tags?: {
    [k: string]: unknown;
  };
  inputs?: {
    [k: string]: {
      [k: string]: unknown;
    };
  };
  outputs?: {
    [k: string]: {
      [k: string]: unknown;
    };
  };
  /**
   * A command component's command.
   */
  command?: string | null;
  /**
   * A pipeline component's steps.
   */
  jobs?: {
    [k: string]: unknown;
  } | null;
  /**
   * A pipeline component's steps in run order.
   */
  order?: string[] | null;
  created_at: number;
  [k: string]: unknown;
}
export interface ComponentList {
  components: Component[];
  [k: string]: unknown;
}
/**
 * A compute target (``local`` is built in).
 */
export interface Compute {
  name: string;
  type: string;
  max_workers?: number | null;
  min_instances?: number;
  max_instances?: number;
  is_default?: boolean;
  [k: string]: unknown;
}
export interface ComputeList {
  computes: Compute[];
  [k: string]: unknown;
}
/**
 * ``POST jobs``: start a pipeline job from Azure's ``pipelineJob`` YAML (as JSON), as ``job create -f``.
 *
 * Relative paths resolve against the Jupyter server's root folder; every path must lie inside it,
 * a registered datastore or the server's ``allowed_paths``. ``set`` applies az-style overrides to
 * the body before it is checked.
 */
export interface CreatePipelineJob {
  $schema?: string | null;
  type?: 'pipeline';
  name?: string | null;
  display_name?: string | null;
  description?: string | null;
  experiment_name?: string | null;
  tags?: {
    [k: string]: unknown;
  };
  compute?: string | null;
  settings?: PipelineDeploymentSettings;
  component?:
    | string
    | {
        [k: string]: unknown;
      }
    | null;
  jobs?: {
    [k: string]: PipelineStep;
  } | null;
  inputs?: {
    [k: string]: unknown;
  };
  outputs?: {
    [k: string]: unknown;
  };
  /**
   * az-style overrides, e.g. 'inputs.input_data.path=data/unlabeled'.
   */
  set?: string[] | null;
  [k: string]: unknown;
}
/**
 * ``settings`` of a pipeline component deployment (and of a pipeline job). ``max_auto_resumes``
 * is batchnb's: how many times a job whose runner was lost is started again by itself (see
 * :mod:`batchnb.pipelines.auto_resume`).
 */
export interface PipelineDeploymentSettings {
  $schema?: string | null;
  default_compute?: string | null;
  default_datastore?: string | null;
  continue_on_step_failure?: boolean;
  force_rerun?: boolean;
  max_auto_resumes?: number;
  [k: string]: unknown;
}
/**
 * One entry of a pipeline's ``jobs:``.
 */
export interface PipelineStep {
  $schema?: string | null;
  type?: 'command' | 'pipeline';
  limits?: StepLimits;
  component:
    | string
    | {
        [k: string]: unknown;
      };
  inputs?: {
    [k: string]: unknown;
  };
  outputs?: {
    [k: string]: unknown;
  };
  compute?: string | null;
  environment_variables?: {
    [k: string]: string;
  };
  display_name?: string | null;
  [k: string]: unknown;
}
/**
 * ``limits`` of a command step: ``timeout`` in seconds, after which the step is stopped and fails.
 */
export interface StepLimits {
  $schema?: string | null;
  timeout?: number | null;
  [k: string]: unknown;
}
export interface DeploymentList {
  deployments: BatchDeployment[];
  [k: string]: unknown;
}
/**
 * ``POST endpoints/<name>/jobs`` with ``dry_run: true``: the first mini-batch scored, no job recorded.
 */
export interface DryRunResult {
  dry_run: true;
  endpoint: string;
  deployment: string;
  files_in_input: number;
  items: unknown[];
  n_items: number;
  status: 'ok' | 'failed';
  stage?: string | null;
  error?: string | null;
  n_results?: number | null;
  preview?: string | null;
  duration: number;
  [k: string]: unknown;
}
/**
 * ``defaults`` in ``PATCH endpoints/<name>``.
 */
export interface EndpointDefaultsPatch {
  /**
   * The deployment that serves invocations naming none.
   */
  deployment_name: string;
}
export interface EndpointList {
  endpoints: BatchEndpoint[];
  [k: string]: unknown;
}
/**
 * ``PATCH endpoints/<name>``: a new default deployment, az-style ``--set`` changes, or both.
 *
 * Changing the default never changes the endpoint's invocation URL.
 */
export interface EndpointPatch {
  defaults?: EndpointDefaultsPatch | null;
  /**
   * az-style assignments, e.g. 'description=nightly scoring' or 'tags.team=ml'.
   */
  set?: string[] | null;
}
/**
 * Every error: ``error`` is the batchnb error class (or the HTTP reason), ``field`` the offending field.
 */
export interface ErrorResponse {
  error: string;
  message: string;
  field?: string | null;
  [k: string]: unknown;
}
/**
 * One item of a batch job that failed for good: a file, or a tabular chunk's rows.
 */
export interface FailedItem {
  item: string;
  mini_batch: number;
  attempts: number;
  why: 'raised' | 'timeout' | 'crashed' | 'missing';
  error_type?: string | null;
  error?: string | null;
  /**
   * the log file that holds it, under the job's folder
   */
  traceback?: string | null;
  /**
   * the deployment revision that scored it
   */
  revision?: number | null;
  /**
   * the traceback itself (with ?tracebacks=true; none for a timeout, crash or missing)
   */
  traceback_text?: string | null;
  [k: string]: unknown;
}
/**
 * A model given inline in a deployment: ``{name, path}``, registered on create.
 */
export interface InlineModel {
  $schema?: string | null;
  name?: string | null;
  path: string;
  version?: string | null;
  type?: 'custom_model' | 'mlflow_model' | 'triton_model';
  description?: string | null;
  [k: string]: unknown;
}
/**
 * ``POST endpoints/<name>/jobs``: invoke the endpoint (its default deployment unless one is named).
 *
 * Relative paths (``input``, ``output_path``, paths in ``inputs``/``outputs``) resolve against the
 * Jupyter server's root folder; every path must lie inside it, a registered datastore or the
 * server's ``allowed_paths``.
 */
export interface InvokeRequest {
  /**
   * A path, azureml:<data>@latest, azureml://datastores/<ds>/paths/<p>, or an fsspec URL.
   */
  input?: string | InputRef | null;
  input_type?: ('uri_folder' | 'uri_file') | null;
  /**
   * Default: the endpoint's default deployment.
   */
  deployment_name?: string | null;
  /**
   * Named inputs (Azure's inputs.yml); a model deployment takes exactly one.
   */
  inputs?: {
    [k: string]: string | InputRef;
  } | null;
  /**
   * Named outputs; 'score' sets the output location.
   */
  outputs?: {
    [k: string]: string | OutputRef;
  } | null;
  output_path?: string | null;
  job_name?: string | null;
  mini_batch_size?: number | string | null;
  instance_count?: number | null;
  /**
   * Per-job overrides, e.g. 'error_threshold=5', 'retry_settings.timeout=60'.
   */
  set?: string[] | null;
  experiment_name?: string | null;
  /**
   * Score only the first mini-batch, in a separate process, and return its result (no job).
   */
  dry_run?: boolean;
  /**
   * Skip the input files an earlier incremental job of the same deployment revision, model and settings scored, reusing their rows.
   */
  incremental?: boolean;
}
/**
 * An output given as ``{type, path}``, as in Azure's ``inputs.yml`` (``outputs.score``).
 */
export interface OutputRef {
  type?: ('uri_folder' | 'uri_file') | null;
  path?: string | null;
  [k: string]: unknown;
}
/**
 * ``GET jobs/<name>/failures``: the job's failed items, in input order (the first ``limit``).
 */
export interface JobFailures {
  name: string;
  items: FailedItem[];
  /**
   * How many failed items the job has (more than items when limited).
   */
  total: number;
  [k: string]: unknown;
}
/**
 * One endpoint's newest jobs and how many it has (``endpoint`` null: jobs of no endpoint).
 */
export interface JobGroup {
  endpoint: string | null;
  total: number;
  /**
   * How many of them are queued or running.
   */
  active: number;
  jobs: (Job | PipelineJob | StepJob)[];
  [k: string]: unknown;
}
/**
 * Jobs, newest first unless sorted otherwise; ``GET jobs`` also says how many match in all.
 */
export interface JobList {
  jobs: (Job | PipelineJob | StepJob)[];
  /**
   * How many jobs match the filters (GET jobs).
   */
  total?: number | null;
  offset?: number | null;
  limit?: number | null;
  /**
   * The matches of every filter but status, counted by status (GET jobs).
   */
  status_counts?: {
    [k: string]: number;
  } | null;
  [k: string]: unknown;
}
/**
 * ``GET jobs/<name>/logs?lines=N``: the tails of the job's main log files, by path under ``logs/``.
 */
export interface JobLogs {
  name: string;
  status:
    | 'Queued'
    | 'Preparing'
    | 'Running'
    | 'Finalizing'
    | 'Completed'
    | 'Failed'
    | 'CancelRequested'
    | 'Canceled'
    | 'Interrupted'
    | 'NotStarted';
  logs_dir: string;
  lines: number;
  files: {
    [k: string]: LogTail;
  };
  [k: string]: unknown;
}
/**
 * The last lines of one log file.
 */
export interface LogTail {
  path: string;
  exists: boolean;
  size?: number;
  lines?: string[];
  /**
   * True when earlier lines were left out.
   */
  truncated?: boolean;
  [k: string]: unknown;
}
/**
 * ``GET jobs/<name>/outputs?output=<name>``: the files of one of the job's outputs (its folder).
 */
export interface JobOutputs {
  name: string;
  status:
    | 'Queued'
    | 'Preparing'
    | 'Running'
    | 'Finalizing'
    | 'Completed'
    | 'Failed'
    | 'CancelRequested'
    | 'Canceled'
    | 'Interrupted'
    | 'NotStarted';
  /**
   * Which named output: 'score' for a batch job.
   */
  output: string;
  path: string;
  exists: boolean;
  files: OutputFile[];
  total_size: number;
  truncated?: boolean;
  [k: string]: unknown;
}
export interface OutputFile {
  /**
   * The path relative to the output folder ('/'-separated).
   */
  name: string;
  size: number;
  [k: string]: unknown;
}
/**
 * ``GET job-overview?per_endpoint=N``: the newest N jobs of each endpoint, with counts.
 */
export interface JobOverview {
  groups: JobGroup[];
  total: number;
  [k: string]: unknown;
}
/**
 * ``GET jobs/<name>/promote?as=cli``: the invocation that started a batch job, written out to run it again.
 */
export interface JobPromotion {
  name: string;
  form: 'cli' | 'inputs-yaml' | 'papermill' | 'sdk';
  /**
   * The command line, inputs YAML, notebook JSON or Python code.
   */
  text: string;
  [k: string]: unknown;
}
/**
 * ``GET jobs/<name>/summary``: the job's summary card, as the notebook shows it once a job ends.
 */
export interface JobSummary {
  name: string;
  status:
    | 'Queued'
    | 'Preparing'
    | 'Running'
    | 'Finalizing'
    | 'Completed'
    | 'Failed'
    | 'CancelRequested'
    | 'Canceled'
    | 'Interrupted'
    | 'NotStarted';
  html: string;
  text: string;
  [k: string]: unknown;
}
/**
 * ``GET jobs/<name>/timeline``: progress over time, one point per finished mini-batch.
 */
export interface JobTimeline {
  name: string;
  started_at?: number | null;
  points: TimelinePoint[];
  [k: string]: unknown;
}
/**
 * The job's progress when a mini-batch finished: seconds since it started, totals so far.
 */
export interface TimelinePoint {
  t: number;
  mini_batches: number;
  rows: number;
  [k: string]: unknown;
}
/**
 * A registered model version (copied into the workspace).
 */
export interface Model {
  id: string;
  name: string;
  version: string;
  path: string;
  type: string;
  description?: string | null;
  tags?: {
    [k: string]: string;
  };
  model_dir?: string | null;
  source_path?: string | null;
  created_at: number;
  [k: string]: unknown;
}
/**
 * ``modelBatchDeployment.schema.json`` (``type: model``).
 */
export interface ModelBatchDeploymentSpec {
  $schema?: string | null;
  name: string;
  endpoint_name?: string | null;
  type?: 'model';
  description?: string | null;
  tags?: {
    [k: string]: string;
  };
  properties?: {
    [k: string]: unknown;
  };
  model: string | InlineModel;
  code_configuration?: CodeConfiguration | null;
  environment?:
    | string
    | {
        [k: string]: unknown;
      }
    | null;
  compute?: string | null;
  resources?: Resources;
  settings?: ModelDeploymentSettings;
  job_definition?: {
    [k: string]: unknown;
  } | null;
}
/**
 * ``resources``: only ``instance_count`` matters locally.
 */
export interface Resources {
  $schema?: string | null;
  instance_count?: number;
  instance_type?: string | null;
  [k: string]: unknown;
}
/**
 * ``settings`` of a model batch deployment, with Azure's defaults.
 *
 * ``mini_batch_mode``, ``recursive``, ``lineage_columns`` and ``max_auto_resumes`` are batchnb's:
 * ``tabular`` cuts Parquet and CSV inputs into row chunks (``mini_batch_size`` rows, or a size such
 * as ``64MB`` cut along Parquet row groups) and passes ``run()`` a pandas DataFrame; ``recursive``
 * lists input folders recursively; ``lineage_columns`` adds each output row's source file, row and
 * mini-batch (unset: on for a Parquet output; a text output, Azure's format, cannot have them);
 * ``max_auto_resumes`` is how many times the compute's agent resumes a job by itself after losing
 * it (the agent or the machine died); ``isolate_failures`` splits a mini-batch whose attempts all
 * failed in halves, down to single items, so that only the items that really fail are counted
 * failed (see docs/scoring-loop.md).
 */
export interface ModelDeploymentSettings {
  $schema?: string | null;
  max_concurrency_per_instance?: number;
  mini_batch_size?: number | string;
  instance_count?: number | null;
  output_action?: 'append_row' | 'summary_only';
  output_file_name?: string;
  retry_settings?: RetrySettings;
  error_threshold?: number;
  logging_level?: 'warning' | 'info' | 'debug';
  environment_variables?: {
    [k: string]: string;
  };
  mini_batch_mode?: 'file' | 'tabular';
  recursive?: boolean;
  max_auto_resumes?: number;
  lineage_columns?: boolean | null;
  isolate_failures?: boolean;
}
/**
 * ``settings.retry_settings``. ``max_retries`` is the total number of attempts per mini-batch,
 * as PRS's ``run_max_try`` (0 is accepted, as Azure accepts it, and means a single attempt);
 * ``timeout`` bounds one ``run()`` call, in seconds (1 to 259200, three days).
 */
export interface RetrySettings {
  $schema?: string | null;
  max_retries?: number;
  timeout?: number;
}
export interface ModelList {
  models: Model[];
  [k: string]: unknown;
}
/**
 * ``model.schema.json``.
 */
export interface ModelSpec {
  $schema?: string | null;
  name: string;
  version?: string | null;
  path: string;
  type?: 'custom_model' | 'mlflow_model' | 'triton_model';
  description?: string | null;
  tags?: {
    [k: string]: string;
  };
  properties?: {
    [k: string]: unknown;
  };
  [k: string]: unknown;
}
/**
 * ``GET jobs/<name>/preview``: the first rows of an output file (CSV or Parquet) or its first lines.
 */
export interface OutputPreview {
  name: string;
  output: string;
  /**
   * The path relative to the output folder ('/'-separated).
   */
  file: string;
  format: 'csv' | 'parquet' | 'text';
  size: number;
  columns: string[];
  rows: unknown[][];
  /**
   * Rows in the whole file, when known cheaply.
   */
  total_rows?: number | null;
  /**
   * False when the CSV has no header row (columns are numbered).
   */
  header?: boolean;
  truncated: boolean;
  [k: string]: unknown;
}
/**
 * ``pipelineComponentBatchDeployment.schema.json`` (``type: pipeline``), run by :mod:`batchnb.pipelines`.
 */
export interface PipelineComponentBatchDeploymentSpec {
  $schema?: string | null;
  name: string;
  endpoint_name?: string | null;
  type?: 'pipeline';
  description?: string | null;
  tags?: {
    [k: string]: string;
  };
  properties?: {
    [k: string]: unknown;
  };
  component?:
    | string
    | {
        [k: string]: unknown;
      }
    | null;
  job_definition?: string | null;
  settings?: PipelineDeploymentSettings;
}
/**
 * ``POST endpoints/<name>/jobs`` with ``dry_run: true`` on a pipeline deployment: each step's
 * command with its paths filled in, nothing run.
 */
export interface PipelineDryRunResult {
  dry_run: true;
  inputs: {
    [k: string]: unknown;
  };
  outputs: {
    [k: string]: unknown;
  };
  steps: {
    [k: string]: unknown;
  }[];
  [k: string]: unknown;
}
/**
 * One mini-batch attempt on the worker timeline: who ran it, when (seconds since the job
 * started) and what came of it.
 */
export interface WorkerAttempt {
  /**
   * The worker process (its name in the logs), or '(lost worker)'.
   */
  worker: string;
  pid?: number | null;
  mini_batch: number;
  attempt: number;
  items: number;
  start: number;
  end: number;
  /**
   * Epoch seconds, by the worker's clock.
   */
  started_at: number;
  ended_at: number;
  outcome: 'ok' | 'retried' | 'failed';
  error?: string | null;
  [k: string]: unknown;
}
/**
 * ``GET jobs/<name>/worker-timeline``: every mini-batch attempt of a batch job, in the order they started.
 */
export interface WorkerTimeline {
  name: string;
  started_at?: number | null;
  /**
   * The worker processes, in the order of their first attempt.
   */
  workers: string[];
  attempts: WorkerAttempt[];
  [k: string]: unknown;
}
/**
 * ``GET workspace``: the workspace the server uses and why.
 */
export interface WorkspaceInfo {
  root: string;
  db_path: string;
  source: 'config' | 'env' | 'marker' | 'default';
  version: string;
  [k: string]: unknown;
}
