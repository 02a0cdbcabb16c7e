/**
 * Library surface of vigo swarm: the pieces other programs may build on.
 *
 * @module
 */

export * from "./src/crypto/mod.ts";
export {
  initIdentity,
  isInitialized,
  readPublicKey,
  rotatePassphrase,
  unwrapIdentity,
} from "./src/puddle/identity.ts";
export {
  SessionClient,
  sessionStatus,
  signWithSession,
} from "./src/puddle/session/client.ts";
export { systemPaths, userPaths } from "./src/platform/paths.ts";
