// Builds the light viewer into build/light-viewer, served by vetpacs at /m/ (see src/vetpacs/web/light_viewer.py).
import { defineConfig } from "vite";
import { viteCommonjs } from "@originjs/vite-plugin-commonjs";
import { fileURLToPath } from "node:url";

export default defineConfig({
  base: "/m/",
  plugins: [viteCommonjs()], // dicom-parser is CommonJS
  optimizeDeps: {
    exclude: ["@cornerstonejs/dicom-image-loader"],
    include: ["dicom-parser"],
  },
  worker: { format: "es" }, // the image loader decodes in module workers
  build: {
    outDir: fileURLToPath(new URL("../build/light-viewer", import.meta.url)),
    emptyOutDir: true,
    target: "es2020",
    chunkSizeWarningLimit: 4000,
    sourcemap: false,
  },
});
