// The attacks of ../forgery.test.ts, run again in warm instances (isolation "function"): a process
// that serves a function version's invocations must hold the same line as a fresh one.
import { useIsolation } from "../attacks.js";
import "../forgery.test.js";

useIsolation("function");
