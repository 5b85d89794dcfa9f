import { packageConfig } from '@stowage/tsup-config';

export default packageConfig();
