/**
 * The crypto core: strict Ed25519, RFC 8785 canonical JSON, domain-separated
 * signing, the one codec of signed objects, and passphrase wrapping of the
 * identity seed.
 *
 * @module
 */

export {
  formatPublicKey,
  generateSeed,
  parsePublicKey,
  PUBLIC_KEY_LENGTH,
  PUBLIC_KEY_PREFIX,
  publicKeyFromSeed,
  SEED_LENGTH,
  SIGNATURE_LENGTH,
  signBytes,
  verifyBytes,
} from "./ed25519.ts";
export { fromHex, toHex } from "./hex.ts";
export { canonicalBytes, canonicalJson } from "./canonical.ts";
export {
  bodyId,
  isSignContext,
  SIGN_CONTEXTS,
  type SignContext,
  signingInput,
  signWithContext,
  verifyWithContext,
} from "./signed.ts";
export {
  type DecodedObject,
  type DecodeOptions,
  decodeSigned,
  isSignatureHex,
  seedSigner,
  type SignedObject,
  SignedObjectError,
  type SignedObjectErrorReason,
  signedObjectId,
  signedObjectWire,
  type Signer,
  signObject,
  verifySigned,
} from "./signed_object.ts";
export {
  assertKdfParams,
  DEFAULT_KDF,
  KDF_CAP,
  KDF_FLOOR,
  type KdfParams,
  parseWrappedHeader,
  SALT_LENGTH,
  unwrapSeed,
  WrapError,
  type WrapErrorCode,
  WRAPPED_LENGTH,
  type WrappedHeader,
  wrapSeed,
} from "./wrap.ts";
