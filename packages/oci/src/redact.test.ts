import { describe, expect, it } from 'vitest';
import { redactDatabaseUrl } from './redact.js';

describe('redactDatabaseUrl', () => {
  it('hides the userinfo password, even one holding @', () => {
    expect(redactDatabaseUrl('postgres://user:s3cr@t@db:5432/x')).toBe('postgres://user:***@db:5432/x');
    expect(redactDatabaseUrl('postgres://user@db/x')).toBe('postgres://user@db/x');
  });

  it('hides password query parameters and keeps the others', () => {
    expect(redactDatabaseUrl('postgres://h/db?sslmode=require&password=pw&sslpassword=k')).toBe(
      'postgres://h/db?sslmode=require&password=***&sslpassword=***',
    );
    expect(redactDatabaseUrl('postgres://u:pw@h:5432/db?sslmode=require')).toBe(
      'postgres://u:***@h:5432/db?sslmode=require',
    );
  });
});
