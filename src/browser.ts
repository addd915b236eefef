/// <reference types="@webgpu/types" preserve="true" />
// The package's browser entry: the shared API (api.ts), without what needs a file system (paths,
// the hub cache folder, the CLI, the benchmark runner). Models come from ModelFiles: hub downloads
// kept in Cache Storage, or a folder the user picks.
export * from './api.js';
export { HubModelFiles, PickedModelFiles, WebHubError, type PickedFile, type PlannedFile, type WebHubOptions } from './web/hub.js';
export { AdapterLimitError, bufferNeeds, checkAdapterLimits, describeNeed, formatBytes, largestNeed, limitViolations, type BufferLimits, type BufferNeed, type BufferNeedsOptions, type LimitViolation } from './web/limits.js';
export { createWebMetric, createWebMetrics, modelsFor, type CreateWebMetricOptions, type ModelFilesByRole } from './web/models.js';
