// @softadastra/sdk as an ES module: the same API as the CommonJS entry point (index.js).
import sdk from "./index.js";

export const {
  Client,
  ClientOptions,
  Result,
  SoftadastraError,
  SyncState,
  TickResult,
  NodeInfo,
  Peer,
  NetworkStats,
  WriteBatch,
  sdkVersion,
  OPTION_NAMES,
  ERROR_CODES,
} = sdk;
export default sdk;
