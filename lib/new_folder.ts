/**
 * Write a new folder of files so that, whatever happens (an error, a kill, a
 * power cut), readers see either no folder or the whole folder: the files go
 * into a hidden temporary folder, are flushed to disk (fsync), and the folder
 * is renamed into place, after which its parent is flushed too. Temporary
 * folders left by a killed writer are removed by the next write into the same
 * parent (a writer holds a lock on its folder, which the system drops when the
 * writer dies). Has no TensorFlow.js dependency, so a crash test can start it fast.
 *
 * @module
 */

/** The temporary folders' names, e.g. `.mnist_model_x.tmp-1f2e3d4c`. */
const TEMP_PATTERN = /^\..+\.tmp-[0-9a-f]{8}$/;
/**
 * A temporary folder whose lock cannot be tried (a platform without
 * `flock` on folders) is stale after this long; a save takes milliseconds.
 */
const STALE_MS = 60 * 60 * 1000;

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** Flush a file or folder to disk. */
async function fsync(path: string): Promise<void> {
  using file = await Deno.open(path, { read: true });
  await file.sync();
}

/**
 * Remove the temporary folders in `parent` whose writer is gone. A writer
 * holds an exclusive lock on its folder until the folder is in place; the
 * system drops the lock when the writer dies, however it dies. So a folder
 * that can be locked now is stale (process ids would not do: they are reused).
 */
async function removeStaleTemps(parent: string): Promise<void> {
  // Listed first, removed after: removing entries while reading a folder can skip others.
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(parent));
  } catch (error) {
    // A folder one may write but not list: nothing can be cleaned, the write goes on.
    if (error instanceof Deno.errors.PermissionDenied || error instanceof Deno.errors.NotCapable) {
      return;
    }
    throw error;
  }
  for (const entry of entries) {
    if (!TEMP_PATTERN.test(entry.name) || !entry.isDirectory) continue;
    const path = `${parent}/${entry.name}`;
    let folder: Deno.FsFile;
    try {
      folder = await Deno.open(path, { read: true });
    } catch {
      continue; // gone meanwhile (its writer renamed it into place)
    }
    try {
      let stale: boolean;
      try {
        stale = await folder.tryLock(true);
      } catch {
        const { mtime } = await folder.stat();
        stale = mtime !== null && Date.now() - mtime.getTime() > STALE_MS;
      }
      if (stale) await Deno.remove(path, { recursive: true }).catch(() => {});
    } finally {
      folder.close();
    }
  }
}

/**
 * Create `parent/name` (or `name_2`, `name_3`, … if taken) holding `files`,
 * atomically and durably. Folders and files get the modes a plain `mkdir`
 * and `writeFile` give under the process's umask (not the 0700 of a
 * temporary folder), so other users can read them where the umask allows.
 * Internal.
 *
 * @param parent The parent folder; created if missing.
 * @param name The folder's name.
 * @param files File name → bytes.
 * @returns The path of the new folder.
 */
export async function writeNewFolder(
  parent: string,
  name: string,
  files: Readonly<Record<string, Uint8Array>>,
): Promise<string> {
  await Deno.mkdir(parent, { recursive: true });
  await removeStaleTemps(parent);
  for (let tries = 1;; tries++) {
    try {
      return await writeOnce(parent, name, files);
    } catch (error) {
      // Another writer's clean-up can take a folder in the instant between its
      // mkdir and its lock; the files then vanish, and a second try is safe.
      if (!(error instanceof Deno.errors.NotFound) || tries === 3) throw error;
    }
  }
}

/** One try of {@linkcode writeNewFolder}, after the clean-up. */
async function writeOnce(
  parent: string,
  name: string,
  files: Readonly<Record<string, Uint8Array>>,
): Promise<string> {
  const random = crypto.getRandomValues(new Uint32Array(1))[0].toString(16).padStart(8, "0");
  const temp = `${parent}/.${name}.tmp-${random}`;
  await Deno.mkdir(temp);
  // Held until the folder is in place, so that no other writer's clean-up takes it.
  using lock = await Deno.open(temp, { read: true });
  try {
    await lock.lock(true);
    for (const [file, bytes] of Object.entries(files)) {
      using handle = await Deno.open(`${temp}/${file}`, { write: true, createNew: true });
      for (let written = 0; written < bytes.length;) {
        written += await handle.write(bytes.subarray(written));
      }
      await handle.sync();
    }
    await lock.sync(); // the folder's entries
    for (let i = 1;; i++) {
      const path = i === 1 ? `${parent}/${name}` : `${parent}/${name}_${i}`;
      if (await exists(path)) continue;
      try {
        await Deno.rename(temp, path);
      } catch (error) {
        if (await exists(path)) continue; // another writer took the name just now
        throw error;
      }
      await fsync(parent);
      return path;
    }
  } catch (error) {
    await Deno.remove(temp, { recursive: true }).catch(() => {});
    throw error;
  }
}
