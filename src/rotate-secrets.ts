import { loadConfig } from "./core/config.js";
import { rotateSecrets } from "./store/rotate.js";

// `npm run rotate-secrets` (every gateway stopped): seals every stored env value with a new key (store/rotate.ts).

try {
  const report = await rotateSecrets(loadConfig());
  const where = report.keyFile ? `; the new key is in ${report.keyFile}` : "";
  console.log(`re-sealed the env values of ${report.resealed} version(s) (${report.sealed} found in clear)${where}`);
} catch (err) {
  console.error(`rotation failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
