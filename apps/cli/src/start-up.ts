// Imported first by cli.ts, before anything compiles: V8 flags for a process
// that lives well under a second. undici parses HTTP with WebAssembly (llhttp);
// V8 compiles it at once with its baseline compiler (Liftoff), then again in the
// background with its optimizing one, and the process cannot exit until that
// second compile is done: 90-130 ms after the last request of a command, and
// about 0.1 s of CPU, on our machines. The baseline code parses headers just as
// well for a command's few hundred requests, so the second compile is turned off.
import { setFlagsFromString } from 'node:v8';

setFlagsFromString('--liftoff-only');
