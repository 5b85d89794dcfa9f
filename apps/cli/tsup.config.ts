import { packageConfig } from '@stowage/tsup-config';

export default packageConfig({ entry: ['src/cli.ts'], dts: false });
