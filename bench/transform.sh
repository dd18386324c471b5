#!/usr/bin/env bash
# Transform benchmark: a 100,000-event dataset in the old scripts' single-file shape (~290 MB),
# transformed by `threadmig transform` in release; reports wall time and peak RSS.
# Targets (issue 6): <= 1.5 s and <= 300 MB peak. Usage: bench/transform.sh [events] [workdir]
set -euo pipefail
EVENTS="${1:-100000}"
WORK="${2:-${TMPDIR:-/tmp}/threadmig-bench-transform}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$WORK"
DATASET="$WORK/dataset-$EVENTS.json"

if [ ! -x /usr/bin/time ]; then
  echo "installing GNU time (apt-get)" >&2
  apt-get install -y time >/dev/null 2>&1 || (apt-get update >/dev/null && apt-get install -y time >/dev/null)
fi

if [ ! -s "$DATASET" ]; then
  echo "generating $DATASET ($EVENTS events, deterministic)" >&2
  python3 - "$EVENTS" "$DATASET" <<'PY'
import json, random, sys, uuid
events_target, path = int(sys.argv[1]), sys.argv[2]
rng = random.Random(20260221)
def uid():
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))
WORDS = ("la licitación del proveedor fue adjudicada el contrato requiere revisión de "
         "documentos precio plazo entrega the supplier award tender quote delivery "
         "invoice review assistant message tool result table rows").split()
def text(lo, hi):
    n = rng.randint(lo, hi)
    out, size = [], 0
    while size < n:
        w = rng.choice(WORDS); out.append(w); size += len(w) + 1
    return " ".join(out)
def iso(ms):
    import datetime
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)
contexts, events, execs, steps, parts = [], [], [], [], []
t0 = 1_735_689_600_000
n_events = 0
while n_events < events_target:
    cid = uid(); ctx_t = t0 + rng.randint(0, 400 * 86400_000)
    kind = rng.random()
    key = ("award_" + uid()) if kind < 0.25 else (("structure:" + uid()) if kind < 0.37 else (cid if kind < 0.92 else None))
    n_exec = 1 + min(int(rng.expovariate(1 / 9.5)), 200)
    t = ctx_t; last_exec = None
    for _ in range(n_exec):
        if n_events >= events_target: break
        eid, trig, reac = uid(), uid(), uid()
        t += rng.randint(60_000, 3_600_000)
        events.append({"id": trig, "type": "user.message", "channel": "whatsapp" if kind < 0.25 else "web",
                       "createdAt": t, "status": "stored",
                       "content": {"parts": [{"type": "text", "text": text(60, 400)}]},
                       "context": [{"id": cid}]})
        n_steps = 1
        while rng.random() < 0.55 and n_steps < 20: n_steps += 1
        item_parts, st = [], t
        status = "completed" if rng.random() < 0.93 else "failed"
        for it in range(n_steps):
            sid = uid(); st += rng.randint(1000, 60000)
            np_ = rng.choice([1, 1, 2, 2, 3, 3, 4])
            tool = rng.random() < 0.5
            steps.append({"id": sid, "createdAt": st, "updatedAt": st + 500, "status": "completed", "iteration": it,
                          "executionId": eid, "eventId": uid(),
                          "toolCalls": [{"toolCallId": uid(), "toolName": "search", "args": {"q": text(10, 60)}}] if tool else [],
                          "toolExecutionResults": [], "continueLoop": it < n_steps - 1,
                          "execution": [{"id": eid}]})
            for idx in range(np_):
                r = rng.random()
                if r < 0.2: p = {"type": "step-start"}
                elif r < 0.6: p = {"type": "text", "text": text(130, 1300)}
                elif r < 0.75: p = {"type": "reasoning", "text": text(70, 530)}
                else: p = {"type": "tool-search", "toolCallId": uid(), "state": "input-available", "input": {"q": text(20, 120)}}
                parts.append({"id": uid(), "key": f"{sid}:{idx}", "stepId": sid, "idx": idx, "type": p["type"],
                              "part": p, "updatedAt": st, "step": [{"id": sid}]})
                item_parts.append(p)
        events.append({"id": reac, "type": "assistant.message", "channel": "web", "createdAt": t + 2000,
                       "status": "completed", "content": {"parts": item_parts[:6]}, "context": [{"id": cid}]})
        n_events += 2
        execs.append({"id": eid, "createdAt": t, "updatedAt": st, "status": status, "workflowRunId": "wrun_" + eid[:8],
                      "context": [{"id": cid}], "trigger": [{"id": trig}], "reaction": [{"id": reac}]})
        last_exec = eid
    row = {"id": cid, "createdAt": iso(ctx_t), "updatedAt": iso(t), "status": "open",
           "content": {"title": text(10, 40), "notes": text(100, 1000)}}
    if key: row["key"] = key
    if last_exec: row["currentExecution"] = [{"id": last_exec}]
    contexts.append(row)
with open(path, "w") as f:
    f.write('{"data":{')
    for i, (name, rows) in enumerate([("context_contexts", contexts), ("context_events", events),
                                      ("story_executions", execs), ("story_steps", steps), ("story_parts", parts)]):
        f.write(("," if i else "") + json.dumps(name) + ":[")
        for j, r in enumerate(rows):
            if j: f.write(",")
            f.write(json.dumps(r, ensure_ascii=False, separators=(",", ":")))
        f.write("]")
    f.write("}}")
print(f"contexts {len(contexts)} events {len(events)} executions {len(execs)} steps {len(steps)} parts {len(parts)}", file=sys.stderr)
PY
fi

(cd "$ROOT" && cargo build --release -p threadmig >/dev/null 2>&1) || (cd "$ROOT" && cargo build --release -p threadmig)
BIN="$ROOT/target/release/threadmig"
SIZE=$(stat -c %s "$DATASET")
rm -rf "$WORK/run"
/usr/bin/time -v "$BIN" --json transform --input "$DATASET" --out "$WORK/run" >"$WORK/summary.json" 2>"$WORK/time.txt" || { cat "$WORK/time.txt" >&2; exit 2; }
WALL=$(grep 'Elapsed (wall clock)' "$WORK/time.txt" | awk '{print $NF}')
RSS_KB=$(grep 'Maximum resident set size' "$WORK/time.txt" | awk '{print $NF}')
USER=$(grep 'User time' "$WORK/time.txt" | awk '{print $NF}')
SYS=$(grep 'System time' "$WORK/time.txt" | awk '{print $NF}')
# Determinism: the output files' hashes, compared with the previous run on the same dataset
# (summary.json holds the rule table, which grows with new rules: hashed apart).
(cd "$WORK/run/02-transform" && sha256sum -- *.ndjson) >"$WORK/outputs.sha256.new"
if [ -s "$WORK/outputs-$EVENTS.sha256" ]; then
  if cmp -s "$WORK/outputs-$EVENTS.sha256" "$WORK/outputs.sha256.new"; then SAME="identical to the previous run"; else SAME="DIFFERENT from the previous run (see $WORK/outputs-$EVENTS.sha256)"; fi
else
  SAME="recorded as the reference"; cp "$WORK/outputs.sha256.new" "$WORK/outputs-$EVENTS.sha256"
fi
SECONDS_WALL=$(echo "$WALL" | awk -F: '{ if (NF == 3) print $1 * 3600 + $2 * 60 + $3; else print $1 * 60 + $2 }')
echo "dataset: $DATASET ($((SIZE / 1000000)) MB)"
echo "summary: $(cat "$WORK/summary.json")"
echo "wall:    ${SECONDS_WALL} s (cpu ${USER} user + ${SYS} sys; target <= 1.5 s)"
echo "peak:    $((RSS_KB / 1024)) MB (target <= 300 MB)"
# The old Node.js transform on this machine: about 9 s and 3.9 GB for 100,000 events.
if [ "$EVENTS" = 100000 ]; then
  awk -v w="$SECONDS_WALL" -v m="$RSS_KB" 'BEGIN { printf "vs node: %.1fx faster, %.1fx less memory (node: 9 s, 3.9 GB)\n", 9 / w, 3.9 * 1024 * 1024 / m }'
fi
echo "outputs: $SAME"
