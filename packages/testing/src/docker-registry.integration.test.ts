import { describe, expect, it } from 'vitest';
import { type DockerRegistry, startDockerRegistry } from './docker-registry.js';
import { requirePeers } from './peers.js';

describe('startDockerRegistry', () => {
  if (!requirePeers('docker-registry')) return;

  it('starts an anonymous registry that answers /v2/ and stops cleanly', async () => {
    const registry = await startDockerRegistry();
    try {
      const response = await fetch(`${registry.url}/v2/`);
      expect(response.status).toBe(200);
      expect(response.headers.get('docker-distribution-api-version')).toBe('registry/2.0');
    } finally {
      await registry.stop();
    }
    await expect(fetch(`${registry.url}/v2/`)).rejects.toThrow();
  });

  it('enforces htpasswd basic auth with bcrypt hashes', async () => {
    await using registry: DockerRegistry = await startDockerRegistry({
      htpasswd: [{ username: 'alice', password: 's3cret' }],
    });
    const anonymous = await fetch(`${registry.url}/v2/`);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toMatch(/^Basic realm=/);
    const wrong = await fetch(`${registry.url}/v2/`, {
      headers: { authorization: `Basic ${Buffer.from('alice:nope').toString('base64')}` },
    });
    expect(wrong.status).toBe(401);
    const right = await fetch(`${registry.url}/v2/`, {
      headers: { authorization: `Basic ${Buffer.from('alice:s3cret').toString('base64')}` },
    });
    expect(right.status).toBe(200);
  });

  it('runs two registries side by side on different ports and data dirs', async () => {
    await using a = await startDockerRegistry();
    await using b = await startDockerRegistry();
    expect(a.port).not.toBe(b.port);
    expect(a.dataDir).not.toBe(b.dataDir);
  });
});
