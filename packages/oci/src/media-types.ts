/** Media types of the OCI image spec and Docker's image manifest v2 (schema 2). */
export const MediaType = {
  OciManifest: 'application/vnd.oci.image.manifest.v1+json',
  OciIndex: 'application/vnd.oci.image.index.v1+json',
  OciConfig: 'application/vnd.oci.image.config.v1+json',
  OciEmpty: 'application/vnd.oci.empty.v1+json',
  OciLayout: 'application/vnd.oci.layout.header.v1+json',
  OciLayer: 'application/vnd.oci.image.layer.v1.tar',
  OciLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  OciLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  OciLayerNonDistributable: 'application/vnd.oci.image.layer.nondistributable.v1.tar',
  OciLayerNonDistributableGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  OciLayerNonDistributableZstd: 'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
  DockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  DockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  DockerConfig: 'application/vnd.docker.container.image.v1+json',
  DockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
  DockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  DockerLayerZstd: 'application/vnd.docker.image.rootfs.diff.tar.zstd',
  DockerForeignLayer: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  DockerPluginConfig: 'application/vnd.docker.plugin.v1+json',
  /** Schema 1: recognised only so it can be refused with a clear error. */
  DockerSchema1Manifest: 'application/vnd.docker.distribution.manifest.v1+json',
  DockerSchema1SignedManifest: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
} as const;

export type KnownMediaType = (typeof MediaType)[keyof typeof MediaType];

const imageManifestTypes: ReadonlySet<string> = new Set([MediaType.OciManifest, MediaType.DockerManifest]);
const indexTypes: ReadonlySet<string> = new Set([MediaType.OciIndex, MediaType.DockerManifestList]);
const schema1Types: ReadonlySet<string> = new Set([
  MediaType.DockerSchema1Manifest,
  MediaType.DockerSchema1SignedManifest,
  'application/json',
]);
const layerTypes: ReadonlySet<string> = new Set([
  MediaType.OciLayer,
  MediaType.OciLayerGzip,
  MediaType.OciLayerZstd,
  MediaType.OciLayerNonDistributable,
  MediaType.OciLayerNonDistributableGzip,
  MediaType.OciLayerNonDistributableZstd,
  MediaType.DockerLayer,
  MediaType.DockerLayerGzip,
  MediaType.DockerLayerZstd,
  MediaType.DockerForeignLayer,
]);
const nonDistributableTypes: ReadonlySet<string> = new Set([
  MediaType.OciLayerNonDistributable,
  MediaType.OciLayerNonDistributableGzip,
  MediaType.OciLayerNonDistributableZstd,
  MediaType.DockerForeignLayer,
]);

/** Every manifest media type a registry accepts on PUT, best first (the `Accept` header order). */
export const manifestMediaTypes: readonly string[] = [
  MediaType.OciIndex,
  MediaType.OciManifest,
  MediaType.DockerManifestList,
  MediaType.DockerManifest,
];

/** An image manifest (OCI or Docker schema 2). */
export function isImageManifestMediaType(mediaType: string): boolean {
  return imageManifestTypes.has(mediaType);
}

/** An image index (OCI) or manifest list (Docker). */
export function isIndexMediaType(mediaType: string): boolean {
  return indexTypes.has(mediaType);
}

/** Any manifest kind Stowage stores: image manifests and indexes. */
export function isManifestMediaType(mediaType: string): boolean {
  return imageManifestTypes.has(mediaType) || indexTypes.has(mediaType);
}

/** Docker schema 1, signed or not: deprecated and refused everywhere. */
export function isSchema1MediaType(mediaType: string): boolean {
  return schema1Types.has(mediaType);
}

/** A known filesystem layer type, including non-distributable and foreign layers. */
export function isLayerMediaType(mediaType: string): boolean {
  return layerTypes.has(mediaType);
}

/** Layers that registries are not expected to hold (their `urls` point elsewhere). */
export function isNonDistributableMediaType(mediaType: string): boolean {
  return nonDistributableTypes.has(mediaType);
}
