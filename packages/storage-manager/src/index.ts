export * from './locks/index.js';
