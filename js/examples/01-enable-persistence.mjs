// Production guide, "Enable persistence for important local data".
import { ClientOptions } from "@softadastra/sdk";

// guide:begin
const options = ClientOptions.persistent(
  "edge-store-kampala-01",
  "/var/lib/softadastra/edge-store-kampala-01/node.wal",
);

options.autoFlush = true;
// guide:end

console.log(`persistent: walPath=${options.walPath} enableWal=${options.enableWal} autoFlush=${options.autoFlush}`);
