// stowage blob get: a blob's bytes, verified against its digest while they stream.
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { defineCommand, GENERAL_OPTIONS_HELP, usageError } from './command.js';
import { oneOperand, toStdout } from './manifests.js';
import { REMOTE_OPTIONS, REMOTE_OPTIONS_HELP, Remotes } from './remote.js';

const BLOB_GET_USAGE = 'usage: stowage blob get [options] <repository@digest>';

export const blobGetCommand = defineCommand({
  name: 'blob get',
  synopsis: 'blob get <repository@digest>',
  summary: 'print or save a blob',
  usage: BLOB_GET_USAGE,
  help: `${BLOB_GET_USAGE}

Streams the blob <repository@digest> names to stdout, or into --output, checked against its
digest on the way: a blob that does not match fails (exit code 1) and --output is not written.

options:
  --output <file>        write it here (whole, or not at all) instead of stdout
${REMOTE_OPTIONS_HELP}
${GENERAL_OPTIONS_HELP}

examples:
  stowage blob get 127.0.0.1:5000/app@sha256:... > layer.tar.gz
  stowage blob get registry.example/app@sha256:... --output config.json`,
  options: { output: { type: 'string', short: 'o' }, ...REMOTE_OPTIONS },
  async run({ operands, values }) {
    const text = oneOperand('blob get', operands, 'a blob reference (repository@digest)');
    await using remotes = new Remotes('blob get', values);
    const { client, reference } = remotes.open(text, 'blob reference');
    if (reference.digest === undefined || reference.tag !== undefined) {
      throw usageError('blob get', `a blob is named by repository@digest, not ${JSON.stringify(text)}`);
    }
    const blob = await client.getBlob(reference.repository, reference.digest);
    if (values.output === undefined) {
      await toStdout(blob.stream);
      return 0;
    }
    // beside the target, renamed over it only once every byte arrived and matched
    const temp = `${values.output}.${process.pid}.part`;
    try {
      await pipeline(blob.stream, createWriteStream(temp, { flags: 'wx' }));
      await rename(temp, values.output);
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    }
    return 0;
  },
});
