import { defineConfig } from 'vite'
import react from '@vitejs/plugin-react'

// The console is served by eddy at /, with the API on the same origin; in
// development (npm run dev) Vite proxies the API to a local `make run`.
const api = process.env.EDDY_DEV_API ?? 'http://localhost:8080'

export default defineConfig({
  plugins: [react()],
  build: {
    outDir: 'dist',
    // dist/.gitkeep stays (the Go embed needs the folder on a fresh clone);
    // the Makefile removes the previous build's files first.
    emptyOutDir: false,
    chunkSizeWarningLimit: 1500,
  },
  server: {
    proxy: {
      '/api': api,
      '/cubejs-api': api,
      '/sdk': api,
      '/v1': api,
    },
  },
})
