import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { RoutelabError } from '../errors.js';

/**
 * How many CPUs this process may use — the one place the native backend's thread pool (and every `--threads`
 * default) is sized from: the CPUs of its affinity mask (`taskset`, cpusets, Slurm, `docker --cpuset-cpus`), within
 * the cgroup CPU quota (`docker --cpus`, Kubernetes limits, systemd CPUQuota) rounded up, and at least 1. The machine's
 * core count is never used on its own: a process limited to 2 CPUs of a 64-core machine that starts 64 threads
 * spends its time in the scheduler.
 */
export interface CpuLimits {
  /** CPUs in the affinity mask. */
  readonly affinity: number;
  /** The tightest cgroup CPU quota over the process's cgroup and its ancestors, in CPUs (1.5 = 150 ms per 100 ms); null: none. */
  readonly quota: number | null;
  /** min(affinity, ⌈quota⌉), at least 1. */
  readonly usable: number;
}

/** Count the CPUs of a kernel CPU list such as `0-3,8,10-11` (Cpus_allowed_list); null when malformed. */
export function parseCpuList(list: string): number | null {
  let n = 0;
  for (const part of list.trim().split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) return null;
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo) return null;
    n += hi - lo + 1;
  }
  return n;
}

/** cgroup v2 `cpu.max` (`max 100000` or `150000 100000`) → CPUs; null when unlimited or unreadable. */
export function parseCpuMax(text: string): number | null {
  const [quota, period] = text.trim().split(/\s+/);
  const q = Number(quota);
  const p = period === undefined ? 100000 : Number(period);
  return quota === 'max' || !(q > 0) || !(p > 0) ? null : q / p;
}

/** cgroup v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us` → CPUs; null when unlimited (-1) or unreadable. */
export function parseCfsQuota(quota: string, period: string): number | null {
  const q = Number(quota.trim());
  const p = Number(period.trim());
  return q > 0 && p > 0 ? q / p : null;
}

function read(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

interface CgroupMount { readonly root: string; readonly point: string; readonly version: 1 | 2 }

/** The cgroup file systems that can limit CPU: cgroup2, and v1 hierarchies with the cpu controller. */
function cgroupMounts(mountinfo: string): CgroupMount[] {
  const mounts: CgroupMount[] = [];
  for (const line of mountinfo.split('\n')) {
    // id parent major:minor root mount-point options [optional fields] - fstype source super-options
    const [pre, post] = line.split(' - ');
    if (post === undefined) continue;
    const fields = pre.split(' ');
    const [fstype, , superOptions = ''] = post.split(' ');
    const unescape = (s: string) => s.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (fstype === 'cgroup2') mounts.push({ root: unescape(fields[3]), point: unescape(fields[4]), version: 2 });
    else if (fstype === 'cgroup' && superOptions.split(',').includes('cpu')) mounts.push({ root: unescape(fields[3]), point: unescape(fields[4]), version: 1 });
  }
  return mounts;
}

/**
 * The tightest CPU quota that applies to this process: for each cgroup hierarchy that can limit CPU, its cgroup
 * (from /proc/self/cgroup, seen through the mount's root as a container sees it) and every ancestor up to the mount
 * point. `fsRoot` prefixes every path (tests use a fake tree).
 */
export function cgroupCpuQuota(fsRoot = '/'): number | null {
  const cgroups = read(join(fsRoot, 'proc/self/cgroup'));
  const mountinfo = read(join(fsRoot, 'proc/self/mountinfo'));
  if (cgroups === null || mountinfo === null) return null;
  // v2: "0::/path"; v1: "N:cpu,cpuacct:/path"
  let v2Path: string | null = null;
  let v1Path: string | null = null;
  for (const line of cgroups.split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    if (m[1] === '0' && m[2] === '') v2Path = m[3];
    else if (m[2].split(',').includes('cpu')) v1Path = m[3];
  }
  let best: number | null = null;
  for (const mount of cgroupMounts(mountinfo)) {
    const path = mount.version === 2 ? v2Path : v1Path;
    if (path === null) continue;
    // A container sees its own cgroup as the mount's root; a path outside the mount's root is not visible here.
    const rel = mount.root === '/' ? path : path === mount.root || path.startsWith(mount.root + '/') ? path.slice(mount.root.length) : '';
    const base = join(fsRoot, mount.point);
    let dir = join(base, rel);
    if (!existsSync(dir)) dir = base;
    for (;;) {
      const quota = mount.version === 2
        ? (() => { const t = read(join(dir, 'cpu.max')); return t === null ? null : parseCpuMax(t); })()
        : (() => {
          const q = read(join(dir, 'cpu.cfs_quota_us'));
          const p = read(join(dir, 'cpu.cfs_period_us'));
          return q === null || p === null ? null : parseCfsQuota(q, p);
        })();
      if (quota !== null && (best === null || quota < best)) best = quota;
      if (dir === base || !dir.startsWith(base)) break;
      dir = join(dir, '..');
    }
  }
  return best;
}

/** CPUs in this process's affinity mask (/proc/self/status Cpus_allowed_list, else what Node reports). */
export function affinityCpus(fsRoot = '/'): number {
  const status = read(join(fsRoot, 'proc/self/status'));
  const list = status === null ? undefined : /^Cpus_allowed_list:\s*(.+)$/m.exec(status)?.[1];
  const n = list === undefined ? null : parseCpuList(list);
  return n !== null && n > 0 ? n : availableParallelism();
}

export function cpuLimits(fsRoot = '/'): CpuLimits {
  const affinity = affinityCpus(fsRoot);
  const quota = process.platform === 'linux' ? cgroupCpuQuota(fsRoot) : null;
  // A small tolerance so that a quota of exactly 2 CPUs computed as 2.0000001 is still 2.
  const usable = Math.max(1, Math.min(affinity, quota === null ? Infinity : Math.ceil(quota - 1e-9)));
  return { affinity, quota, usable };
}

let cached: number | undefined;

/** How many CPUs this process may use (see `CpuLimits`); computed once. */
export function usableCpus(): number {
  cached ??= cpuLimits().usable;
  return cached;
}

/**
 * The thread count of the CPU kernels: `--threads` when given, else the ROUTELAB_THREADS environment variable, else
 * `usableCpus()`. A value that is not a positive integer is an error naming where it came from.
 */
export function kernelThreads(flag?: number | string): number {
  const check = (v: string | number, where: string) => {
    const n = typeof v === 'number' ? v : v.trim() === '' ? NaN : Number(v);
    if (!Number.isInteger(n) || n < 1 || n > 1024) throw new RoutelabError(where, `expected a thread count from 1 to 1024, got ${JSON.stringify(v)}`);
    return n;
  };
  if (flag !== undefined) return check(flag, '--threads');
  const env = process.env.ROUTELAB_THREADS;
  if (env !== undefined && env !== '') return check(env, 'ROUTELAB_THREADS');
  return usableCpus();
}
