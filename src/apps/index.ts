// Applications over folders of images: retrieval with an embedding cache, frame-sequence
// consistency, the agreement map of a pair.
export { retrieve, rankResults, type RetrieveOptions, type Retrieval, type RetrievalResult } from './retrieve.js';
export { EmbeddingCache, type EmbeddingCacheOptions, type EmbeddingCacheStats } from './embedding-cache.js';
export { videoConsistency, listFrames, summarise, type VideoOptions, type VideoConsistency, type MetricConsistency, type ScoreSummary } from './video.js';
export { listImages, naturalCompare, isImageName as isGalleryImageName, IMAGE_EXTENSIONS, CACHE_FOLDER, type ListedImage, type ListImagesOptions } from './images.js';
export { renderSweepPlot, renderRetrievalGrid, Canvas, FONT_WIDTH, FONT_HEIGHT, type SweepPlotCell, type SweepPlotOptions, type RetrievalGridRow, type RetrievalGridOptions } from './plot.js';
