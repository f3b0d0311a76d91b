// esbuild bundles .css files as text (see build.mjs); the page injects them.
declare module "*.css" {
  const text: string;
  export default text;
}
