export { createImageStore, type ImageStore, type ImageStoreOptions } from './image-store.js';
