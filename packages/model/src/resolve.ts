/**
 * Model names → paths. A model argument that is not an existing path is offered to the resolvers
 * other packages register (e.g. a catalogue of bundled models), in registration order.
 */

import { TersorError, pathExists } from "@tersor/core";
import { isReferenceModelName, referenceModelPath } from "@tersor/models";

/** Returns a local path for `name`, or undefined when it does not know the name. */
export type ModelResolver = (name: string) => string | undefined | Promise<string | undefined>;

const resolvers = new Map<string, ModelResolver>();

/** Registers (or replaces) the resolver called `id`. Returns a function that removes it. */
export function registerModelResolver(id: string, resolver: ModelResolver): () => void {
  resolvers.set(id, resolver);
  return () => {
    if (resolvers.get(id) === resolver) resolvers.delete(id);
  };
}

/** The ids of the registered resolvers, in the order they are tried. */
export function modelResolvers(): string[] {
  return [...resolvers.keys()];
}

/** `pathOrName` when it exists on disk, else the first registered resolver's answer; `E_IO` when neither. */
export async function resolveModelPath(pathOrName: string): Promise<string> {
  if (await pathExists(pathOrName)) return pathOrName;
  for (const r of resolvers.values()) {
    const p = await r(pathOrName);
    if (p !== undefined) return p;
  }
  const known = resolvers.size === 0 ? "no model resolvers are registered" : `none of the registered resolvers (${modelResolvers().join(", ")}) knows it`;
  throw new TersorError("E_IO", `cannot open model "${pathOrName}": no such file or directory, and ${known}`);
}

// The bundled reference models of @tersor/models ("ref-tiny", "ref-small") resolve by name.
registerModelResolver("@tersor/models", (name) => {
  if (!isReferenceModelName(name)) return undefined;
  const dir = referenceModelPath(name);
  if (dir === undefined) throw new TersorError("E_IO", `reference model "${name}" is not in this install of @tersor/models; build it with \`node tools/train-reference-models.mjs ${name}\``);
  return dir;
});
