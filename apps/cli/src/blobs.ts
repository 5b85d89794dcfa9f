// stowage blob get: a blob's bytes, verified against its digest while they stream.
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { digestStream } from '@stowage/oci';
import { defineCommand, GENERAL_OPTIONS_HELP, oneOperand, quoted, usageError } from './command.js';
import { toStdout } from './manifests.js';
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
    const { registry, reference } = await remotes.open(text, 'blob reference');
    if (reference.digest === undefined || reference.tag !== undefined) {
      throw usageError('blob get', `a blob is named by repository@digest, not ${JSON.stringify(text)}`);
    }
    const blob = await registry.getBlob(reference.repository, reference.digest);
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

const BLOB_PUT_USAGE = 'usage: stowage blob put [options] <repository> <file>';

export const blobPutCommand = defineCommand({
  name: 'blob put',
  synopsis: 'blob put <repository> <file>',
  summary: 'push a file as a blob',
  usage: BLOB_PUT_USAGE,
  help: `${BLOB_PUT_USAGE}

Pushes <file> into <repository> as a blob (read twice: once to hash it, once to send it; one
request, resumed from the start on a failure). A blob the repository has is not sent again.
Prints its digest; with --json {"digest","size"}.

options:
  --json                 the digest and size as one JSON object
${REMOTE_OPTIONS_HELP}
${GENERAL_OPTIONS_HELP}

examples:
  stowage blob put 127.0.0.1:5000/app layer.tar.gz
  stowage blob put registry.example/app config.json --json`,
  options: { json: { type: 'boolean' }, ...REMOTE_OPTIONS },
  async run({ operands, values }) {
    if (operands.length !== 2) {
      throw usageError(
        'blob put',
        `blob put needs a repository and a file${operands.length > 2 ? `, not ${quoted(operands)}` : ''}`,
      );
    }
    const [repository, file] = operands as [string, string];
    const { digest, size } = await digestStream(createReadStream(file));
    await using remotes = new Remotes('blob put', values, { writes: true });
    const { registry, reference } = await remotes.open(repository, 'repository');
    if (reference.tag !== undefined || reference.digest !== undefined) {
      throw usageError('blob put', `a blob goes into a repository, not ${JSON.stringify(repository)}`);
    }
    if (!(await registry.headBlob(reference.repository, digest))) {
      await registry.putBlob(reference.repository, createReadStream(file), { digest, size });
    }
    process.stdout.write(values.json ? `${JSON.stringify({ digest, size })}\n` : `${digest}\n`);
    return 0;
  },
});

const BLOB_DELETE_USAGE = 'usage: stowage blob delete [options] <repository@digest>';

export const blobDeleteCommand = defineCommand({
  name: 'blob delete',
  synopsis: 'blob delete <repository@digest>',
  summary: 'delete a blob from a repository',
  usage: BLOB_DELETE_USAGE,
  help: `${BLOB_DELETE_USAGE}

Deletes the blob <repository@digest> names from that repository (a registry may refuse it:
docker-registry unless storage.delete is on; exit code 9).

options:
${REMOTE_OPTIONS_HELP}
${GENERAL_OPTIONS_HELP}

example:
  stowage blob delete 127.0.0.1:5000/app@sha256:...`,
  options: { ...REMOTE_OPTIONS },
  async run({ operands, values }) {
    const text = oneOperand('blob delete', operands, 'a blob reference (repository@digest)');
    await using remotes = new Remotes('blob delete', values, { writes: true });
    const { registry, reference } = await remotes.open(text, 'blob reference');
    if (reference.digest === undefined || reference.tag !== undefined) {
      throw usageError('blob delete', `a blob is named by repository@digest, not ${JSON.stringify(text)}`);
    }
    await registry.deleteBlob(reference.repository, reference.digest);
    return 0;
  },
});
