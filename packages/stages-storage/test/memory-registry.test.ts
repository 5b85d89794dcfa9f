// The shared StagesStorage suite over the in-memory registry (every capability, no disk).
import { memoryBackend } from './memory.js';
import { stagesStorageSuite } from './suite.js';

stagesStorageSuite({ name: 'memory registry', create: memoryBackend() });
