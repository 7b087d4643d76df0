"""A big repository (the kernel) end to end, each figure beside its peer from the same run.

    .venv/bin/python bench/bench_big.py /work/corpora/linux [--runs 20] [--hybrid]

The corpus is cloned into a temp dir (the corpus itself is never touched), then:
1. a full lexical index: wall time beside `cindex` on the same tree, and the daemon's peak RSS
   split into anonymous memory and mapped files; and the time until a literal search, made each
   second meanwhile, finds every file `csearch` finds (searchable), beside `cindex`;
2. searches through the socket, first page of 10 hits: quoted literals and regexes beside
   `csearch` (the same files must match, every page read once), `sym:` names and words;
   `rg` beside them for scale;
3. resync: a no-op beside `git status`; after `touch`ing every file, the first and second
   resync beside `git status`; after editing 200 files, the files parsed;
4. with --hybrid, the daemon again on the same index with the model on: its memory after
   --embed-seconds, then hybrid p50/p99 while it embeds (a partly embedded index).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench_index import ms, timed
from daemon_run import Daemon, corpus, csearch_files, escape, our_files, peers, rss_kib

LITERALS = ["kmem_cache_create(", "rcu_read_lock_bh", "kfree_skb_reason(", "copy_to_user(argp"]
# Each matching under a thousand lines: a search's pages end there (search/paging.MAX_DEPTH).
REGEXES = [
    r"spin_lock_irq(save|restore)\(&[a-z_]+->reg_lock",
    r"static int __init [a-z_]+_driver_init\(void\)",
    r"EXPORT_SYMBOL_GPL\(blk_[a-z_]+\)",
]
SYMBOLS = ["sym:kmalloc", "sym:schedule", "sym:tcp_sendmsg", "sym:ext4_fill_super"]
WORDS = ["read timeout", "page fault handler", "tcp congestion window"]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", repo, *args], capture_output=True, text=True, check=True).stdout


def searches(client, clone: Path, env: dict, runs: int) -> None:
    def row(label: str, params: dict, peer: list[str] | None, rg_args: list[str] | None) -> None:
        ours = timed(lambda: client.call("search", {**params, "limit": 10}), runs)
        # The first run reads whatever of the index the query needs and the page cache lacks:
        # the runs after it show the index's steady state.
        line = (
            f"  {label:44.44} codeweir p50 {ms(ours, 0.5):7.2f} p99 {ms(ours, 0.99):7.2f} ms"
            f" (first {1000 * ours[0]:7.2f}, p99 after it {ms(ours[1:], 0.99):7.2f})"
        )
        if peer is not None:
            cs = timed(lambda: subprocess.run(["csearch", "-l", *peer], env=env, capture_output=True), runs)
            theirs = csearch_files(env, clone, peer)
            mine = our_files(client, params)
            same = (
                "same files"
                if mine == theirs
                else f"FILES DIFFER: ours {len(mine)}, csearch {len(theirs)}, only ours {sorted(mine - theirs)[:3]}, only theirs {sorted(theirs - mine)[:3]}"
            )
            line += (
                f" | csearch p50 {ms(cs, 0.5):7.2f} ms ({ms(cs, 0.5) / ms(ours, 0.5):5.2f}x ours), {len(theirs)} files, {same}"
            )
        if rg_args is not None:
            # The kernel's .gitignore ignores everything ("/*"): rg must not read it.
            rg = timed(lambda: subprocess.run(["rg", "--no-ignore", "-l", *rg_args, str(clone)], capture_output=True), 3)
            line += f" | rg p50 {ms(rg, 0.5):8.1f} ms"
        print(line)

    print("searches (first page of 10 hits)")
    for literal in LITERALS:
        row(
            f"literal {literal!r}",
            {"query": f'"{literal}"', "mode": "lexical", "case_sensitive": True},
            [escape(literal)],
            ["-F", literal],
        )
    for pattern in REGEXES:
        row(f"regex {pattern!r}", {"query": pattern, "mode": "regex", "case_sensitive": True}, [pattern], [pattern])
    for name in SYMBOLS:
        row(f"symbol {name!r}", {"query": name, "mode": "symbol"}, None, None)
    for words in WORDS:
        row(f"words {words!r}", {"query": words, "mode": "lexical"}, None, None)


def resyncs(d: Daemon, clone: Path, runs: int) -> None:
    with d.client() as c:

        def sync() -> dict:
            return c.call("sync", {"repo": "corpus", "wait": True})

        gst = lambda: subprocess.run(["git", "-C", clone, "status", "--porcelain"], capture_output=True)  # noqa: E731
        noop = timed(sync, runs)
        status = timed(gst, runs)
        print(
            f"no-op resync  codeweir p50 {ms(noop, 0.5):8.1f} ms   git status p50 {ms(status, 0.5):7.1f} ms   ratio {ms(noop, 0.5) / ms(status, 0.5):.2f}x"
        )
        subprocess.run(f"git -C {clone} ls-files -z | (cd {clone} && xargs -0 touch)", shell=True, check=True)
        first = timed(sync, 1)
        second = timed(sync, runs)
        status = timed(gst, runs)
        print(
            f"after touch   codeweir first {ms(first, 0.5):8.1f} ms, then p50 {ms(second, 0.5):7.1f} ms"
            f"   git status p50 {ms(status, 0.5):7.1f} ms   ratio {ms(second, 0.5) / ms(status, 0.5):.2f}x"
        )
        before = {job["id"] for job in c.call("jobs")["jobs"]}
        edited = [p for p in git(clone, "ls-files", "*.c").split("\n") if p][::97][:200]
        for path in edited:
            with open(clone / path, "a") as f:
                f.write("/* edited by bench_big */\n")
        t = time.perf_counter()
        sync()
        assert c.call("wait")["done"]
        took = time.perf_counter() - t
        jobs = [job for job in c.call("jobs")["jobs"] if job["id"] not in before]
        parsed = sum(job["counts"].get("indexed", 0) for job in jobs)
        print(f"edit {len(edited)} files  parsed {parsed} (goal {len(edited)}) in {took * 1000:.0f} ms, {len(jobs)} job(s)")


def hybrid(d: Daemon, repo: Path, runs: int, embed_s: float) -> None:
    again = Daemon({"corpus": repo}, model=True, tmp=d.tmp)
    again.start()
    time.sleep(embed_s)  # a benchmark, not a test: let the embedder make a partly embedded index
    # The model on (the default): the embed backlog's bookkeeping grows with the index's chunks.
    print(
        f"model on, after {embed_s:.0f} s: daemon RSS {rss_kib(again.proc.pid, 'VmRSS') / 1024:.0f} MiB"
        f" (anonymous {rss_kib(again.proc.pid, 'RssAnon') / 1024:.0f}), peak {again.peak_kib() / 1024:.0f} MiB   goal 512"
    )
    with again.client() as c:
        cov = c.call("status")["repos"][0]
        for query in WORDS + ["allocate memory for the device", '"copy_from_user" user buffer']:
            t = timed(lambda: c.call("search", {"query": query, "mode": "hybrid", "limit": 10}), runs)
            print(f"  hybrid {query!r:40} p50 {ms(t, 0.5):7.2f} p99 {ms(t, 0.99):7.2f} ms")
        print(f"  (vectors: {cov.get('chunks_embedded')} of {cov.get('chunks')} chunks)")
    again.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--hybrid", action="store_true")
    parser.add_argument("--embed-seconds", type=float, default=120)
    args = parser.parse_args()
    peers("cindex", "csearch", "rg")
    source = corpus(args.corpus)
    work = Path(tempfile.mkdtemp(prefix="codeweir-big-"))
    clone = work / "corpus"
    subprocess.run(["git", "clone", "-q", str(source), str(clone)], check=True)
    files = len(git(clone, "ls-files").splitlines())
    print(f"== {source.name}: {files} tracked files (a clone)")
    env = {**os.environ, "CSEARCHINDEX": str(work / "csearchindex")}
    t = time.perf_counter()
    subprocess.run(["cindex", str(clone)], env=env, capture_output=True, check=True)
    cindex_s = time.perf_counter() - t
    first_literal = {"query": f'"{LITERALS[0]}"', "mode": "lexical", "case_sensitive": True}
    expected = csearch_files(env, clone, [escape(LITERALS[0])])
    d = Daemon({"corpus": clone})
    started = time.perf_counter()
    d.start()
    # Searched each second while it indexes, until it finds what csearch does (not after: the
    # searches would slow the rest of the index).
    searchable_s = d.wait_indexed(until=lambda c: our_files(c, first_literal) == expected, since=started)
    index_s = time.perf_counter() - started
    with d.client() as c:
        status = c.call("status")["repos"][0]
        print(
            f"full index    codeweir {index_s:8.1f} s ({status['files_indexed']} files, {status['chunks']} chunks)"
            f"   cindex {cindex_s:6.1f} s   ratio {index_s / cindex_s:.1f}x"
        )
        searchable_s = index_s if searchable_s is None else searchable_s
        print(
            f"searchable    codeweir {searchable_s:8.1f} s (literal {LITERALS[0]!r}: the {len(expected)} files csearch finds)"
            f"   cindex {cindex_s:6.1f} s   ratio {searchable_s / cindex_s:.1f}x"
        )
        print(
            f"peak RSS      daemon {d.peak_kib() / 1024:.0f} MiB (sampled: anonymous {d.peak_anon_kib / 1024:.0f} MiB,"
            f" mapped files {d.peak_file_kib / 1024:.0f} MiB), largest parse worker {d.peak_worker_kib / 1024:.0f} MiB"
        )
        searches(c, clone, env, args.runs)
    resyncs(d, clone, args.runs)
    d.stop()
    if args.hybrid:
        hybrid(d, clone, args.runs, args.embed_seconds)
    shutil.rmtree(d.tmp, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
