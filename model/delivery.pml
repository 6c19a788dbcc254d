/*
 * docket's delivery protocol on Redis, as a Promela model checked by spin.
 *
 * One task key, two workers, a bounded number of client calls and faults. Every Lua script is
 * one atomic step (`d_step`), as Redis runs it; every step names its script. The worker side
 * (claim, run, settle, signals) follows docket/src/worker/ and backend/redis/mod.rs.
 * model/README.md maps every step to its script and every assertion to the guarantee it checks.
 *
 * Invariant 6 (cancel(key) stops every task of the key) follows the replace-beside field
 * `\2<key>` (bes): enqueue.lua names in it the delivery a `replace` went beside, cancel.lua
 * tombstones and signals it, settlement forgets it.
 *
 * The model is the fixed protocol. Each audit finding can be put back with a macro, to show
 * that the model catches it (spin -a -DBUG_R2 delivery.pml):
 *   BUG_R1_RECOVER  recover() claims a lost delivery with a plain XCLAIM: +1 delivery
 *   BUG_R1_NEUTRAL  tick.lua counts every takeover, even from a worker heard from lately
 *   BUG_R1_GRACE    no outage grace: a worker reclaims right after a Redis restart
 *   BUG_R1          all three
 *   BUG_R2          retry.lua / bury.lua settle first and check only for a *different* index
 *                   entry: no ownership check, an absent entry passes
 *   BUG_R6A         cancel.lua only signals a delivered task (no `x<id>` mark)
 *   BUG_R7          hold/admit keep a delivery when the index is not a waiting task (old aside)
 *   BUG_R8          retry.lua / bury.lua settle (XACK+XDEL) before writing the new state
 * and gaps this model found in the fixed design (the default model has a fix for each):
 *   GAP_RECOVER     recover() hands out a lost delivery without looking at the index
 *   GAP_UNHOLD      a replace adds a task beside a held one (instead of swapping it), and
 *                   unhold.lua re-queues the held task over the newer one, which runs
 *   GAP_SLOT        a reclaimed delivery dropped by tick.lua (cancelled or superseded), or buried
 *                   as poison, keeps its concurrency slot: what waits behind it waits forever
 *   GAP_ABSENT      no tombstone: an enqueue over `x<id>` erases the only cancel mark, and once
 *                   the newer task ends the index names nothing, so the cancelled delivery is
 *                   handed out again (or buried as a dead letter)
 *   GAP_BURY_ORDER  bury.lua frees the key (HDEL index) before its dead letter write, which
 *                   may fail: the task comes back keyless and a strike then drops it unseen
 *   BUG_BESIDE      cancel.lua ignores the replace-beside field `\2<key>`: an older run that a
 *                   `replace` went beside is neither tombstoned nor told to stop
 *   BUG_BESIDE_ONE  `\2<key>` names only the latest delivery a replace went beside: once it is
 *                   settled, an older run beside which a replace went too is out of a cancel's
 *                   reach (needs three enqueues: -DNENQ=3 -DNE=10)
 *   BUG_LETTER      bury.lua keeps the letter of a run a `replace` went beside once the key
 *                   names nothing: when the replacement ended as a dead letter first, the older
 *                   run's letter takes its place (found by the fault model; needs -DNFAIL=2)
 *   BUG_EARLY_FOUND a worker remembers a cancel for a delivery not here only when the cancel
 *                   reached nothing here: the cancel that stops an earlier run of the key (a
 *                   replace went beside it) misses the newer delivery on its way to the worker
 *                   (found by the fault model)
 * A check that is not the product's guarantee, for exploring:
 *   STRICT_START    invariants 2 and 3 at the worker's local start instead of the hand-over
 * Scope: NO_STRIKE (no strike or restore calls), NO_READ_AHEAD (no delivery read ahead), and
 * SKIP=n (invariant n unchecked, to see what else a variant breaks).
 */

/* ---- bounds (override with -D) ---- */
#ifndef NENQ
#define NENQ 2      /* enqueue.lua calls by the client */
#endif
#ifndef NCANCEL
#define NCANCEL 1   /* cancel.lua calls */
#endif
#ifndef NFAULTS
#define NFAULTS 2   /* faults in one run, each kind at most once */
#endif
#ifndef NFAIL
#define NFAIL 1     /* runs that fail (retryable or permanent) */
#endif
#ifndef MAXD
#define MAXD 2      /* max_deliveries: buried as poison when delivered more often */
#endif
#ifndef NE
#define NE 8        /* stream ids 1..NE-1 (asserted never to run out; NE <= 13) */
#endif

#define W 2
#define NG (NENQ + 1)

#ifdef BUG_R1
#define BUG_R1_RECOVER
#define BUG_R1_NEUTRAL
#define BUG_R1_GRACE
#endif

/* index[key] kinds */
#define I_NONE 0
#define I_ID 1      /* a stream id: queued, or delivered and running */
#define I_S 2       /* `s`: scheduled */
#define I_H 3       /* `h`: held by a strike */
#define I_G 4       /* `g<id>`: gated, waiting for a concurrency slot */
#define I_X 5       /* `x<id>`: delivered, and cancelled */

/* worker status */
#define LIVE 0
#define FROZEN 1    /* silent (GC pause, partition), resumes with its stale local copy */
#define CRASHED 2   /* gone for good; its pending entries stay */

/* what a worker does with the delivery it holds */
#define P_IDLE 0
#define P_HANDED 1     /* handed over (claim, reclaim or recover), not started */
#define P_RUN 2        /* running */
#define P_OK 3         /* succeeded: complete.lua */
#define P_CANCELLED 4  /* stopped by a cancel, or never started: complete.lua */
#define P_RETRY 5      /* failed, retryable: retry.lua */
#define P_BURY 6       /* failed for good: bury.lua */
#define P_POISON 7     /* taken over past max_deliveries: bury.lua */

/* ---- Redis ---- */
byte nextid = 1;    /* the next stream id XADD gives */
byte ldi;           /* the group's last delivered id: XREADGROUP > reads above it */
byte nnew;          /* entries above ldi still in the stream */
bit instr[NE];      /* in the stream */
bit pend[NE];       /* in the pending entries list (PEL) */
byte own[NE];       /* PEL: owner consumer */
byte cnt[NE];       /* PEL: delivery count */
bit stale[NE];      /* PEL: idle past the redelivery timeout although its owner holds it */
byte gen[NE];       /* ghost: the task (one per accepted enqueue) the entry carries */
byte ik;            /* index[key]: kind */
byte ie;            /* index[key]: stream id of I_ID, I_G, I_X */
bit tomb[NE];       /* index field `\1<id>`: the tombstone of a cancelled delivery */
#ifndef BUG_BESIDE_ONE
short bes;          /* index field `\2<key>`: every unsettled delivery a `replace` went beside */
#define BESIDE(n) ((bes >> n) & 1)
#else
byte bes;           /* (BUG_BESIDE_ONE) `\2<key>`: the latest delivery a replace went beside */
#define BESIDE(n) (bes == n)
#endif
bit sched;          /* in the schedule (message parked) */
byte schg;
bit held;           /* a held copy (held hash) */
byte heldg;
bit strike;         /* a strike matching the task is in place */
byte slot;          /* the concurrency slot (size 1): the delivery holding it */
byte gq[3];         /* the slot's gated queue */
byte gqn;

/* ---- workers ---- */
byte st[W];
byte cur[W];        /* the delivery it holds (in flight), until its settlement returns */
byte ph[W];
bit stop[W];        /* the delivery it holds was cancelled (signal read) */
short sig[W];       /* cancel signals (`c`) sent to it and not yet read: bit per stream id */
short rsig[W];      /* superseded signals (`r`, a replace went beside) not yet read */
short early[W];     /* cancels read for deliveries it did not hold (RunningTasks::early) */
short supd[W];      /* `r` read for deliveries it did not hold (RunningTasks::superseded) */
bit sup[W];         /* the delivery it holds, not started, was superseded (`r` read): dropped */
byte ra[W];         /* a delivery read ahead (worker/read_ahead.rs): held, renewed, not started */
bit rastop[W];      /* ... a cancel of it (or of a later delivery of its key) was read */
bit rasup[W];       /* ... a replace went beside it (`r` read): dropped when it would start */
bit raland[W];      /* ... its read's answer reached the worker (RunningTasks::wait); until
                     * then it is on its way, and a signal for it is remembered (early, supd) */
bit lost[W];        /* lost_reads: deliveries may sit in its PEL unseen */
bit quiet[W];       /* its consumer is idle past the redelivery timeout (not heard from) */
bit nrenew[W];      /* saw an outage, has not renewed since (its peers grant it grace) */
bit admitted[W];    /* the delivery it holds took the concurrency slot */

/* ---- ghost state for the invariants ---- */
byte lastgen;       /* tasks accepted so far; task g is newer than every task below g */
bit done[NG];       /* a run of it succeeded and complete.lua settled its delivery */
bit canc[NG];       /* cancel returned true for it */
bit kc[NG];         /* accepted before a cancel of its key that returned true (invariant 6) */
bit dead[NG];       /* a dead letter was written for it */
byte letter;        /* the task whose dead letter the key holds (one a key; 0: none) */
bit dropped[NG];    /* replaced or superseded by a newer task of the key */
bit hurt[NG];       /* a worker holding it crashed or froze */

/* ---- budgets ---- */
byte enqs, cancels, fails, faults;
bit f_crash, f_freeze, f_lostread, f_gap, f_restart, f_lostreply, f_writeerr, struck;

/* Scratch variables, not part of the state (spin -DSCRATCH= keeps them, for pan -DBFS). */
#ifndef SCRATCH
#define SCRATCH hidden
#endif
SCRATCH byte t_e, t_o, t_g, t_i, t_b, t_a;

/* An assertion of invariant n: pan prints `invariant==n` with the failed condition. With
 * -DSKIP=n invariant n is not checked (to see what else a variant breaks). */
#ifndef SKIP
#define SKIP 0
#endif
byte invariant = SKIP;
#define CHECK(n, cond) assert((cond) || invariant == n)

#define CAN_FAULT(f) (faults < NFAULTS && !f)
#define ANY(P) (P(1) || P(2) || P(3) || P(4) || P(5) || P(6) || P(7) || P(8) || P(9) || P(10) || P(11) || P(12))
/* Reclaimable: pending, and its owner does not renew it (crashed, frozen, never saw it), or an
 * outage or renewal gap let it idle past the timeout. */
#define RECL(n) (n < NE && pend[n] && (stale[n] || st[own[n]] != LIVE || (cur[own[n]] != n && ra[own[n]] != n)))
#define PENDING(n) (n < NE && pend[n])
#define OWNS0(n) (n < NE && pend[n] && own[n] == 0)
#define OWNS1(n) (n < NE && pend[n] && own[n] == 1)
#define OWNS(w) ((w == 0 && ANY(OWNS0)) || (w == 1 && ANY(OWNS1)))
#ifdef BUG_R1_GRACE
#define GRACE true
#else
/* tick.lua runs only after every live worker renewed since an outage (outage grace) */
#define GRACE (!(st[0] == LIVE && nrenew[0]) && !(st[1] == LIVE && nrenew[1]))
#endif
#define SETTLING(w) (ph[w] >= P_OK)

/* ---------------------------------------------------------------------------------------- */
/* Redis primitives                                                                          */

inline xdel(n) {
  if
  :: instr[n] && n > ldi -> nnew--
  :: else -> skip
  fi;
  instr[n] = 0
}

inline xack(n) {
  pend[n] = 0; own[n] = 0; cnt[n] = 0; stale[n] = 0
}

/* The task whose index entry holds the key now (0: none). */
inline holder(res) {
  if
  :: ik == I_ID || ik == I_G || ik == I_X -> res = gen[ie]
  :: ik == I_S -> res = schg
  :: ik == I_H -> res = heldg
  :: else -> res = 0
  fi
}

/* A delivery of task g is dropped because the index names another entry: only a newer task
 * may take its place (invariant 1: nothing vanishes; R7: the older copy never wins), or g
 * itself in a later entry (a retry, a release), or g has ended. With no index entry the key's
 * newer task has ended already. */
inline drop_task(g) {
  holder(t_g);
  if
  :: t_g == 0 -> t_g = lastgen
  :: else -> skip
  fi;
  CHECK(1, t_g >= g || done[g] || canc[g] || dead[g]);
  if
  :: t_g > g -> dropped[g] = 1
  :: else -> skip
  fi
}

/* store.lua store(), due now: XADD + HSET index key id */
inline add_entry(g) {
  assert(nextid < NE);  /* bound: raise NE */
  instr[nextid] = 1; gen[nextid] = g; nnew++;
  ik = I_ID; ie = nextid;
  nextid++
}

/* store.lua store(), due later: ZADD schedule + HSET parked + HSET index key s */
inline schedule(g) {
  if
  :: sched ->
     CHECK(1, g > schg);
     dropped[schg] = 1
  :: else -> skip
  fi;
  sched = 1; schg = g; ik = I_S; ie = 0
}

/* store.lua waiting(): scheduled, or queued and never delivered */
#define WAITING (ik == I_S || (ik == I_ID && !pend[ie]))

/* settle.lua decide(): what becomes of delivery n settled by worker w */
#define D_STALE 0
#define D_KEEP 1
#define D_CANCELLED 2
#define D_DROP 3
inline decide(n, w, res) {
  if
  :: !(pend[n] && own[n] == w) -> res = D_STALE
  :: else ->
     if
     :: ik == I_ID && ie == n -> res = D_KEEP
     :: (ik == I_X && ie == n) || tomb[n] -> res = D_CANCELLED
     :: else -> res = D_DROP
     fi
  fi
}

/* index.lua forget_beside(): delivery n, settled, is no longer the one a replace went beside */
inline forget_beside(n) {
#ifndef BUG_BESIDE_ONE
  bes = bes & ~(1 << n)
#else
  if
  :: bes == n -> bes = 0
  :: else -> skip
  fi
#endif
}

/* settle.lua settle(): a cancelled delivery frees its key (unless a newer task took it) and its
 * tombstone; a cancelled or superseded one is forgotten as the one a replace went beside; XACK;
 * XDEL unless it stays (gated) */
inline settle(n, outcome, stay) {
  if
  :: outcome == D_CANCELLED ->
     if
     :: ik == I_X && ie == n -> ik = I_NONE; ie = 0
     :: else -> skip
     fi;
     tomb[n] = 0
  :: else -> skip
  fi;
  if
  :: outcome == D_CANCELLED || outcome == D_DROP -> forget_beside(n)
  :: else -> skip
  fi;
  xack(n);
  if
  :: !(stay) -> xdel(n)
  :: else -> skip
  fi
}

/* Invariants 2, 3 and 6 where the protocol decides: a delivery handed to a worker is never of
 * a task already completed, nor of a cancelled one (unless the worker already knows it is
 * cancelled, and so never starts it), nor of any task of a key cancelled since. A cancel or a
 * supersession read before the delivery came (RunningTasks::early, ::superseded) applies. */
inline handout(w, n) {
#ifndef STRICT_START
  CHECK(2, !done[gen[n]]);
#endif
  cur[w] = n; ph[w] = P_HANDED;
  if
  :: (early[w] >> n) & 1 -> stop[w] = 1; early[w] = early[w] & ~(1 << n)
  :: else -> stop[w] = 0
  fi;
  if
  :: (supd[w] >> n) & 1 -> sup[w] = 1; supd[w] = supd[w] & ~(1 << n)
  :: else -> sup[w] = 0
  fi;
#ifndef STRICT_START
  CHECK(3, !canc[gen[n]] || stop[w]);
  CHECK(6, !kc[gen[n]] || stop[w] || sup[w]);
#endif
  skip
}

inline finish(w) {
  cur[w] = 0; ph[w] = P_IDLE; stop[w] = 0; sup[w] = 0; admitted[w] = 0
}

/* Holder bookkeeping when a worker goes silent: its tasks are no longer healthy. */
inline mark_hurt(w) {
  t_i = 1;
  do
  :: t_i < NE ->
     if
     :: pend[t_i] && own[t_i] == w -> hurt[gen[t_i]] = 1
     :: else -> skip
     fi;
     t_i++
  :: else -> break
  od;
  if
  :: cur[w] != 0 -> hurt[gen[cur[w]]] = 1
  :: else -> skip
  fi
}

/* release.lua: give back the slot of delivery n, queue the first gated task still the key's */
inline release_slot(n) {
  if
  :: slot == n -> slot = 0
  :: else -> skip
  fi;
  do
  :: gqn > 0 ->
     t_o = gq[0]; gq[0] = gq[1]; gq[1] = gq[2]; gq[2] = 0; gqn--;
     if
     :: instr[t_o] ->
        xdel(t_o);
        if
        :: ik == I_G && ie == t_o -> add_entry(gen[t_o]); break
        :: else -> drop_task(gen[t_o])  /* superseded since */
        fi
     :: else -> skip  /* cancelled meanwhile */
     fi
  :: else -> break
  od;
  skip
}

/* ---------------------------------------------------------------------------------------- */
/* client calls                                                                              */

/* enqueue.lua (+ store.lua): add or replace, due now or later */
inline enqueue(replace, later) {
  printf("client enqueue.lua replace=%d later=%d\n", replace, later);
  enqs++;
  if
  :: ik != I_NONE && ik != I_X && !replace -> skip  /* duplicate: the key is taken */
  :: else ->
     lastgen++;
     if
     :: ik == I_S -> sched = 0; dropped[schg] = 1               /* replaced while scheduled */
     :: ik == I_ID && !pend[ie] && instr[ie] -> xdel(ie); dropped[gen[ie]] = 1 /* replaced, queued */
#ifndef GAP_UNHOLD
     :: ik == I_H -> held = 0; dropped[heldg] = 1               /* replaced while held */
#endif
     :: ik == I_G -> xdel(ie); dropped[gen[ie]] = 1              /* replaced while gated */
     :: ik == I_ID && pend[ie] ->
        /* delivered (running, or read ahead): added beside it, named in `\2<key>`, and every
         * worker told (`r key i id`). Only to the worker holding it unstarted is that news: a
         * run goes on, and no other worker can get it any more (XREADGROUP > is past it, a
         * takeover or recover judges it superseded); so only that one is sent the signal. */
#ifndef BUG_BESIDE_ONE
        bes = bes | (1 << ie);
#else
        bes = ie;
#endif
        t_i = 0;
        do
        :: t_i < W ->
           if
           :: st[t_i] != CRASHED && ((cur[t_i] == ie && ph[t_i] == P_HANDED) || ra[t_i] == ie) ->
              rsig[t_i] = rsig[t_i] | (1 << ie)
           :: else -> skip
           fi;
           t_i++
        :: else -> break
        od
     :: else -> skip  /* free, or cancelled (`x<id>`): a new task */
     fi;
     if
     :: later -> schedule(lastgen)
     :: else -> add_entry(lastgen)
     fi
  fi
}

/* Tell every worker that is not gone to stop delivery n and every earlier one of the key. */
inline signal_cancel(n) {
  t_i = 0;
  do
  :: t_i < W ->
     if
     :: st[t_i] != CRASHED -> sig[t_i] = sig[t_i] | (1 << n)
     :: else -> skip
     fi;
     t_i++
  :: else -> break
  od
}

/* cancel.lua: the delivery a `replace` went beside (`\2<key>`), still pending, is tombstoned and
 * every worker told to stop it; then the key's task is removed wherever it waits, and a
 * delivered one is marked `x<id>` and every worker told to stop that delivery. A held copy beside
 * a newer task goes too (R6c). */
inline cancel() {
  printf("client cancel.lua\n");
  cancels++;
  t_b = 0;
#ifndef BUG_BESIDE
  if
  :: bes != 0 ->
     t_a = 1;
     do
     :: t_a < NE ->
        if
        :: BESIDE(t_a) && pend[t_a] -> tomb[t_a] = 1; canc[gen[t_a]] = 1; t_b = 1; signal_cancel(t_a)
        :: else -> skip
        fi;
        t_a++
     :: else -> break
     od;
     bes = 0
  :: else -> skip
  fi;
#endif
  if
  :: held -> held = 0; canc[heldg] = 1; t_b = 1
  :: else -> skip
  fi;
  if
  :: ik == I_NONE -> skip                     /* returns 1 only for a held copy */
  :: ik == I_X -> t_b = 1                     /* cancelled already; its run is being stopped */
  :: ik == I_S -> sched = 0; canc[schg] = 1; ik = I_NONE; t_b = 1
  :: ik == I_H -> ik = I_NONE; t_b = 1
  :: ik == I_G -> canc[gen[ie]] = 1; xdel(ie); ik = I_NONE; ie = 0; t_b = 1
  :: ik == I_ID && pend[ie] ->
     canc[gen[ie]] = 1; t_b = 1;
#ifndef BUG_R6A
     ik = I_X;
#ifndef GAP_ABSENT
     tomb[ie] = 1;
#endif
#endif
     signal_cancel(ie)
  :: ik == I_ID && !pend[ie] ->
     if
     :: instr[ie] -> canc[gen[ie]] = 1
     :: else -> skip
     fi;
     xdel(ie); ik = I_NONE; ie = 0; t_b = 1
  fi;
  /* Invariant 6: every task of the key accepted so far is cancelled with it. */
  if
  :: t_b ->
     t_i = 1;
     do
     :: t_i <= lastgen -> kc[t_i] = 1; t_i++
     :: else -> break
     od
  :: else -> skip
  fi;
  skip
}

/* strike.lua, then restore.lua + unhold.lua (Docket::restore) */
inline unhold() {
  printf("client restore.lua + unhold.lua\n");
  strike = 0;
  if
  :: held ->
     held = 0;
#ifdef GAP_UNHOLD
     if
     :: WAITING -> drop_task(heldg)             /* a task scheduled since supersedes it */
     :: else -> add_entry(heldg)
     fi
#else
     if
     :: ik == I_H -> add_entry(heldg)          /* still the key's task */
     :: else -> drop_task(heldg)
     fi
#endif
  :: else -> skip
  fi
}

/* tick.lua, promotion: a due scheduled task moves into the stream */
inline promote() {
  printf("tick.lua promotes the scheduled task\n");
  assert(ik == I_S);  /* model consistency */
  sched = 0;
  add_entry(schg)
}

/* ---------------------------------------------------------------------------------------- */
/* worker steps                                                                              */

/* XREADGROUP GROUP workers w COUNT 1 STREAMS stream > (mod.rs claim/read) */
inline claim(w, lose) {
  printf("w%d claim (XREADGROUP >), reply lost=%d\n", w, lose);
  t_e = ldi + 1;
  do
  :: !instr[t_e] -> t_e++
  :: else -> break
  od;
  ldi = t_e; nnew--;
  pend[t_e] = 1; own[t_e] = w; cnt[t_e] = 1; stale[t_e] = 0; quiet[w] = 0;
  if
  :: lose -> lost[w] = 1   /* the reply never arrived: delivered, unseen */
  :: else -> handout(w, t_e)
  fi
}

/* Reading ahead (worker/mod.rs, read_ahead.rs): XREADGROUP while the worker runs a delivery;
 * its answer lands later (`land`), and the entry waits in its buffer, renewed, tracked by key
 * (RunningTasks::wait) for a cancel. Invariants 2, 3 and 6 are checked at the read, as for a
 * claim, and 3 and 6 again where it lands. */
inline claim_ahead(w) {
  printf("w%d reads ahead (XREADGROUP >)\n", w);
  t_e = ldi + 1;
  do
  :: !instr[t_e] -> t_e++
  :: else -> break
  od;
  ldi = t_e; nnew--;
  pend[t_e] = 1; own[t_e] = w; cnt[t_e] = 1; stale[t_e] = 0; quiet[w] = 0;
#ifndef STRICT_START
  CHECK(2, !done[gen[t_e]]);
#endif
#ifndef STRICT_START
  CHECK(3, !canc[gen[t_e]]);
  CHECK(6, !kc[gen[t_e]]);
#endif
  ra[w] = t_e; raland[w] = 0; rastop[w] = 0; rasup[w] = 0
}

/* Delivery n is pending to worker w. */
#define MINE(w, n) (pend[n] && own[n] == w)

/* The read's answer reaches the worker, which puts the delivery in its buffer (tracked by key):
 * what its signals said of it meanwhile applies. Between the two it is on its way: a claim's
 * answer kept for the next claim (partitions/bells.rs), or a claim returned and not yet
 * sorted. */
inline land(w) {
  printf("w%d gets e%d, read ahead\n", w, ra[w]);
  raland[w] = 1;
  if
  :: (early[w] >> ra[w]) & 1 -> rastop[w] = 1; early[w] = early[w] & ~(1 << ra[w])
  :: else -> skip
  fi;
  if
  :: (supd[w] >> ra[w]) & 1 -> rasup[w] = 1; supd[w] = supd[w] & ~(1 << ra[w])
  :: else -> skip
  fi;
  /* A cancel since its read: the worker knows, or its signal is still to be read (then it
   * reaches the delivery in the buffer); or the delivery is a stale copy (taken over and
   * settled elsewhere meanwhile: no cancel can see it, as at invariant 6's end of a run). */
#ifndef STRICT_START
  CHECK(3, !canc[gen[ra[w]]] || rastop[w] || ((sig[w] >> ra[w]) & 1) || !MINE(w, ra[w]));
  CHECK(6, !kc[gen[ra[w]]] || rastop[w] || rasup[w] || ((sig[w] >> ra[w]) & 1)
           || !MINE(w, ra[w]));
#endif
  skip
}

/* A slot is free: what was read ahead starts first (buffer.pop, then process: tracked, with
 * what the cancels and supersessions read for it meanwhile). */
inline pop_ahead(w) {
  printf("w%d takes e%d from its read-ahead buffer\n", w, ra[w]);
  cur[w] = ra[w]; ph[w] = P_HANDED; stop[w] = rastop[w]; sup[w] = rasup[w];
  ra[w] = 0; rastop[w] = 0; rasup[w] = 0; raland[w] = 0;
  start(w)
}

/* settle.lua judge(), for a delivery taken over or recovered: handed out (t_o = D_KEEP) only when
 * its key names it; otherwise settled here, cancelled, or superseded by a newer task of its key
 * that waits, runs or ended (the index names another task, or nothing), and the worker gives
 * back its concurrency slot. */
inline judge(n) {
  if
  :: (ik == I_X && ie == n) || tomb[n] -> t_o = D_CANCELLED
  :: !(ik == I_ID && ie == n) -> t_o = D_DROP; drop_task(gen[n])
  :: else -> t_o = D_KEEP
  fi;
  if
  :: t_o != D_KEEP ->
     settle(n, t_o, 0);
#ifndef GAP_SLOT
     release_slot(n);
#endif
     skip
  :: else -> skip
  fi
}

/* tick.lua, takeover of the lowest stalled delivery (mod.rs tick: past max_deliveries it is
 * buried as poison) */
inline reclaim(w, lose) {
  printf("w%d tick.lua takeover, reply lost=%d\n", w, lose);
  t_e = 1;
  do
  :: !RECL(t_e) -> t_e++
  :: else -> break
  od;
#ifdef BUG_R1_NEUTRAL
  cnt[t_e]++;
#else
  if
  :: quiet[own[t_e]] -> cnt[t_e]++   /* its owner went silent */
  :: else -> skip                    /* heard from lately: RETRYCOUNT, neutral */
  fi;
#endif
  own[t_e] = w; stale[t_e] = 0; quiet[w] = 0;
  judge(t_e);
  if
  :: lose -> lost[w] = 1
  :: !lose && t_o == D_KEEP && cnt[t_e] > MAXD -> cur[w] = t_e; ph[w] = P_POISON
  :: !lose && t_o == D_KEEP -> handout(w, t_e)
  :: else -> skip
  fi
}

/* mod.rs recover(): XPENDING of this consumer, less what it holds; XCLAIM RETRYCOUNT n */
inline recover(w) {
  printf("w%d recover()\n", w);
  t_e = 1;
  do
  :: t_e < NE && !(pend[t_e] && own[t_e] == w && t_e != ra[w]) -> t_e++
  :: else -> break
  od;
  if
  :: t_e == NE -> lost[w] = 0
  :: else ->
#ifdef BUG_R1_RECOVER
     cnt[t_e]++;
#endif
     stale[t_e] = 0; quiet[w] = 0;
#ifdef GAP_RECOVER
     handout(w, t_e)
#else
     judge(t_e);   /* recover.lua: judged as a takeover is */
     if
     :: t_o == D_KEEP -> handout(w, t_e)
     :: else -> skip
     fi
#endif
  fi
}

/* The worker reads its signals (worker/signals.rs RunningTasks::cancel, ::supersede). A cancel
 * (`c`, delivery n) stops the run it tracks (started: ph >= P_RUN) if it is n or an earlier
 * delivery of the key; a delivery handed and not yet started is tracked nowhere, so only the
 * cancel of n itself reaches it (remembered in `early` until it starts: here, `stop`). n itself,
 * unless it is here, is remembered as well, even when the cancel stopped an earlier run of its
 * key: it may be on its way (BUG_EARLY_FOUND: only when the cancel reached nothing here). A
 * `replace` went beside n (`r`): n, held and not started, is dropped when it starts; a run of n
 * goes on; otherwise n is remembered (`supd`) in case it is on its way. An id no longer pending
 * can come only when it is on its way already (a read ahead whose answer has not landed: its
 * copy was settled elsewhere since); other such ids are not remembered. */
inline read_signals(w) {
  printf("w%d reads signals: cancel %d, superseded %d\n", w, sig[w], rsig[w]);
  t_i = 1;
  do
  :: t_i < NE ->
     if
     :: (sig[w] >> t_i) & 1 ->
        t_b = 0;  /* a delivery of the key held here was reached */
        if
        :: cur[w] != 0 && ph[w] >= P_RUN && cur[w] <= t_i ->
           t_b = 1;
           if
           :: ph[w] == P_RUN -> stop[w] = 1
           :: else -> skip  /* its run ended */
           fi
        :: cur[w] == t_i && ph[w] == P_HANDED -> t_b = 1; stop[w] = 1
        :: else -> skip
        fi;
        if
        :: ra[w] != 0 && raland[w] && ra[w] <= t_i ->
           t_b = 1; rastop[w] = 1  /* read ahead: starts cancelled */
        :: else -> skip
        fi;
        /* n itself, unless it is here, may be on its way: remembered (one no longer pending
         * can come only if it is on its way already: a copy settled elsewhere since). */
        if
#ifdef BUG_EARLY_FOUND
        :: (pend[t_i] || ra[w] == t_i) && !t_b -> early[w] = early[w] | (1 << t_i)
#else
        :: (pend[t_i] || ra[w] == t_i) && cur[w] != t_i && !(ra[w] == t_i && raland[w]) ->
           early[w] = early[w] | (1 << t_i)
#endif
        :: else -> skip
        fi
     :: else -> skip
     fi;
     if
     :: (rsig[w] >> t_i) & 1 ->
        if
        :: cur[w] == t_i && ph[w] == P_HANDED -> sup[w] = 1
        :: cur[w] == t_i -> skip  /* started: it runs on */
        :: ra[w] == t_i && raland[w] -> rasup[w] = 1
        :: else ->
           if
           :: pend[t_i] || ra[w] == t_i -> supd[w] = supd[w] | (1 << t_i)
           :: else -> skip
           fi
        fi
     :: else -> skip
     fi;
     t_i++
  :: else -> break
  od;
  sig[w] = 0; rsig[w] = 0
}

/* worker.rs settle(), up to run_attempt: a delivery cancelled before it started never starts;
 * hold.lua when a strike is in place; admit.lua for its concurrency slot. */
inline start(w) {
  printf("w%d starts e%d (stop=%d strike=%d)\n", w, cur[w], stop[w], strike);
  t_e = cur[w];
  if
  :: sup[w] ->
     /* process.rs: superseded before it started, dropped as the replace would have dropped it
      * from the queue; acknowledged (complete.lua), the key left to the newer task */
     CHECK(1, lastgen > gen[t_e]);
     dropped[gen[t_e]] = 1;
     ph[w] = P_CANCELLED
  :: !sup[w] && stop[w] -> ph[w] = P_CANCELLED
  :: else ->
     if
     :: strike ->                             /* hold.lua */
        decide(t_e, w, t_o);
        if
        :: t_o == D_KEEP ->
           if
           :: held ->
              CHECK(1, gen[t_e] > heldg);
              dropped[heldg] = 1
           :: else -> skip
           fi;
           held = 1; heldg = gen[t_e]; ik = I_H; ie = 0
#ifdef BUG_R7
        :: t_o == D_DROP && !WAITING ->       /* old aside(): kept unless a task waits */
           if
           :: held ->
              CHECK(1, gen[t_e] > heldg || done[heldg] || canc[heldg]);
              dropped[heldg] = 1
           :: else -> skip
           fi;
           held = 1; heldg = gen[t_e]; ik = I_H; ie = 0; t_o = D_KEEP
#endif
        :: t_o == D_DROP -> drop_task(gen[t_e])
        :: else -> skip
        fi;
        if
        :: t_o != D_STALE -> settle(t_e, t_o, 0)
        :: else -> skip
        fi;
        finish(w)
     :: else ->                               /* admit.lua (every task has the limit) */
        if
        :: slot == 0 || slot == t_e || !pend[slot] ->
           slot = t_e; admitted[w] = 1; ph[w] = P_RUN;
#ifdef STRICT_START
           CHECK(2, !done[gen[t_e]]);  /* at the local start */
           CHECK(3, !canc[gen[t_e]]);  /* at the local start */
#endif
           skip
        :: else ->
           decide(t_e, w, t_o);
           if
           :: t_o == D_KEEP ->
              assert(gqn < 3);  /* bound */
              gq[gqn] = t_e; gqn++; ik = I_G; ie = t_e
#ifdef BUG_R7
           :: t_o == D_DROP && !WAITING ->
              assert(gqn < 3);  /* bound */
              gq[gqn] = t_e; gqn++; ik = I_G; ie = t_e; t_o = D_KEEP
#endif
           :: t_o == D_DROP -> drop_task(gen[t_e])
           :: else -> skip
           fi;
           if
           :: t_o != D_STALE -> settle(t_e, t_o, (t_o == D_KEEP))
           :: else -> skip
           fi;
           finish(w)
        fi
     fi
  fi
}

/* The run ends (process.rs after run_attempt): the slot is released first. A run stopped by a
 * cancel ends cancelled (execution.rs: the cancel wins a biased select at the run's next await).
 * Invariant 6: a run of a key cancelled since (also an older one a replace went beside) succeeds
 * only while its worker has not yet read the cancel, or when its delivery was settled before the
 * cancel (a stale copy whose delivery was retried or taken over and settled: no cancel can see
 * it, and its success acknowledges nothing). */
inline end_run(w, next) {
  printf("w%d run of e%d ends -> phase %d\n", w, cur[w], next);
  if
  :: next == P_OK -> CHECK(6, !kc[gen[cur[w]]] || sig[w] != 0 || !pend[cur[w]])
  :: else -> skip
  fi;
  if
  :: admitted[w] -> release_slot(cur[w]); admitted[w] = 0
  :: else -> skip
  fi;
  ph[w] = next
}

/* complete.lua */
inline complete(w, ok) {
  printf("w%d complete.lua e%d ok=%d\n", w, cur[w], ok);
  t_e = cur[w];
  if
  :: !(ik == I_ID && ie == t_e) ->
     /* no longer the key's: forget a tombstone, and that a replace went beside it */
     tomb[t_e] = 0; forget_beside(t_e)
  :: else -> skip
  fi;
  if
  :: (ik == I_ID || ik == I_X) && ie == t_e -> ik = I_NONE; ie = 0
  :: else -> skip
  fi;
  if
  :: pend[t_e] && ok -> done[gen[t_e]] = 1
  :: else -> skip
  fi;
  xack(t_e); xdel(t_e)
}

/* retry.lua (+ store.lua), the next attempt due later */
inline retry(w) {
  printf("w%d retry.lua e%d\n", w, cur[w]);
  t_e = cur[w];
#ifdef BUG_R2
  xack(t_e); xdel(t_e);
  if
  :: (ik == I_X && ie == t_e) || tomb[t_e] ->
     if
     :: ik == I_X && ie == t_e -> ik = I_NONE; ie = 0
     :: else -> skip
     fi;
     tomb[t_e] = 0
  :: ik == I_NONE || (ik == I_ID && ie == t_e) ->
     CHECK(2, !done[gen[t_e]]);
     CHECK(3, !canc[gen[t_e]]);
     schedule(gen[t_e])
  :: else -> drop_task(gen[t_e])
  fi
#else
  decide(t_e, w, t_o);
  if
  :: t_o == D_KEEP ->
     CHECK(2, !done[gen[t_e]]);
     CHECK(3, !canc[gen[t_e]]);
     CHECK(6, !kc[gen[t_e]]);
     schedule(gen[t_e])
  :: t_o == D_DROP -> drop_task(gen[t_e])
  :: else -> skip
  fi;
  if
  :: t_o != D_STALE -> settle(t_e, t_o, 0)
  :: else -> skip
  fi
#endif
}

/* bury.lua: a dead letter (poison: taken over past max_deliveries) */
inline bury(w, poison) {
  printf("w%d bury.lua e%d poison=%d\n", w, cur[w], poison);
  t_e = cur[w];
#ifdef BUG_R2
  xack(t_e); xdel(t_e);
  t_b = (ik == I_NONE || (ik == I_ID && ie == t_e)) && !tomb[t_e];
  if
  :: (ik == I_X && ie == t_e) || tomb[t_e] ->
     if
     :: ik == I_X && ie == t_e -> ik = I_NONE; ie = 0
     :: else -> skip
     fi;
     tomb[t_e] = 0
  :: ik == I_ID && ie == t_e -> ik = I_NONE; ie = 0
  :: ik == I_NONE -> skip
  :: else -> drop_task(gen[t_e])
  fi;
#else
  decide(t_e, w, t_o);
#ifdef BUG_LETTER
  t_b = (t_o == D_KEEP || (t_o == D_DROP && ik == I_NONE));
#else
  /* superseded (a replace went beside it): no letter, as no retry; otherwise a key naming
   * nothing keeps the letter (nothing dropped silently) */
  t_b = (t_o == D_KEEP || (t_o == D_DROP && ik == I_NONE && !BESIDE(t_e)));
#endif
  if
  :: t_o == D_KEEP -> ik = I_NONE; ie = 0
  :: t_o == D_DROP && !t_b -> drop_task(gen[t_e])
  :: else -> skip
  fi;
#endif
  if
  :: t_b ->
     CHECK(2, !done[gen[t_e]]);
     CHECK(3, !canc[gen[t_e]]);
     CHECK(6, !kc[gen[t_e]]);
     CHECK(5, !poison || hurt[gen[t_e]]);
     CHECK(1, gen[t_e] >= letter);   /* one letter a key, the newest: never an older task's */
     dead[gen[t_e]] = 1;
     letter = gen[t_e]
  :: else -> skip
  fi;
#ifndef BUG_R2
  if
  :: t_o != D_STALE -> settle(t_e, t_o, 0)
  :: else -> skip
  fi;
#endif
#ifndef GAP_SLOT
  if
  :: poison -> release_slot(t_e)   /* its run never ended: free what it held */
  :: else -> skip
  fi;
#endif
  skip
}

/* The settlement's first write fails (a record-size limit): the worker gives up, it stays
 * pending to this worker, unseen (lost_reads). With BUG_R8 the script had settled it first. */
inline write_error(w) {
  printf("w%d settlement of e%d fails at its first write\n", w, cur[w]);
  t_e = cur[w];
#ifdef BUG_R8
  decide(t_e, w, t_o);
  if
  :: t_o != D_STALE -> settle(t_e, t_o, 0)   /* settled first, then the write fails */
  :: else -> skip
  fi;
#endif
#ifdef GAP_BURY_ORDER
  if
  :: ph[w] == P_BURY || ph[w] == P_POISON ->
     decide(t_e, w, t_o);
     if
     :: t_o == D_KEEP -> ik = I_NONE; ie = 0   /* bury.lua frees the key, then HSET dead fails */
     :: else -> skip
     fi
  :: else -> skip
  fi;
#endif
  lost[w] = 1;
  finish(w)
}

inline settle_call(w) {
  if
  :: ph[w] == P_OK -> complete(w, 1)
  :: ph[w] == P_CANCELLED -> complete(w, 0)
  :: ph[w] == P_RETRY -> retry(w)
  :: ph[w] == P_BURY -> bury(w, 0)
  :: ph[w] == P_POISON -> bury(w, 1)
  fi
}

/* ---------------------------------------------------------------------------------------- */
/* faults                                                                                    */

inline crash(w) {
  printf("w%d CRASHES\n", w);
  faults++; f_crash = 1;
  mark_hurt(w);
  st[w] = CRASHED; quiet[w] = 1; finish(w);
  sig[w] = 0; rsig[w] = 0; early[w] = 0; supd[w] = 0; lost[w] = 0; nrenew[w] = 0;
  ra[w] = 0; rastop[w] = 0; rasup[w] = 0; raland[w] = 0
}

inline restart() {
  printf("Redis restarts\n");
  faults++; f_restart = 1;
  t_i = 1;
  do
  :: t_i < NE -> stale[t_i] = pend[t_i]; t_i++   /* PEL idle times jump by the downtime */
  :: else -> break
  od;
  t_i = 0;
  do
  :: t_i < W ->
     /* Consumer idle keeps the downtime (RDB on Redis >= 7.2; the worst case: on 7.0 with AOF
      * it restarts at load, and every owner looks alive for a while). */
     quiet[t_i] = 1;
     if
     :: st[t_i] != CRASHED -> nrenew[t_i] = 1
     :: else -> skip
     fi;
     t_i++
  :: else -> break
  od;
  skip
}

/* After an outage a live worker renews what it holds at once (renew.lua, explicit ids). */
inline reconnect(w) {
  printf("w%d reconnects and renews\n", w);
  nrenew[w] = 0; quiet[w] = 0;
  if
  :: cur[w] != 0 && pend[cur[w]] && own[cur[w]] == w -> stale[cur[w]] = 0
  :: else -> skip
  fi;
  if
  :: ra[w] != 0 && pend[ra[w]] && own[ra[w]] == w -> stale[ra[w]] = 0
  :: else -> skip
  fi
}

/* ---------------------------------------------------------------------------------------- */

#ifdef NO_READ_AHEAD
#define READ_AHEAD(w)
#else
#define READ_AHEAD(w) \
  :: d_step { st[w] == LIVE && cur[w] != 0 && ra[w] == 0 && nnew > 0 -> claim_ahead(w) } \
  :: d_step { st[w] == LIVE && ra[w] != 0 && !raland[w] -> land(w) } \
  :: d_step { st[w] == LIVE && cur[w] == 0 && ra[w] != 0 && raland[w] -> pop_ahead(w) }
#endif

#define WORKER(w) \
  :: d_step { st[w] == LIVE && cur[w] == 0 && ra[w] == 0 && nnew > 0 -> claim(w, 0) } \
  :: d_step { st[w] == LIVE && cur[w] == 0 && ra[w] == 0 && nnew > 0 && CAN_FAULT(f_lostread) -> \
       faults++; f_lostread = 1; claim(w, 1) } \
  :: d_step { st[w] == LIVE && cur[w] == 0 && ra[w] == 0 && GRACE && ANY(RECL) -> reclaim(w, 0) } \
  :: d_step { st[w] == LIVE && cur[w] == 0 && ra[w] == 0 && GRACE && ANY(RECL) && CAN_FAULT(f_lostread) -> \
       faults++; f_lostread = 1; reclaim(w, 1) } \
  :: d_step { st[w] == LIVE && cur[w] == 0 && ra[w] == 0 && lost[w] -> recover(w) } \
  READ_AHEAD(w) \
  :: d_step { st[w] == LIVE && nrenew[w] -> reconnect(w) } \
  :: d_step { st[w] == LIVE && (sig[w] != 0 || rsig[w] != 0) -> read_signals(w) } \
  :: d_step { st[w] == LIVE && ph[w] == P_HANDED -> start(w) } \
  :: d_step { st[w] == LIVE && ph[w] == P_RUN && !stop[w] -> end_run(w, P_OK) } \
  :: d_step { st[w] == LIVE && ph[w] == P_RUN && stop[w] -> end_run(w, P_CANCELLED) } \
  :: d_step { st[w] == LIVE && ph[w] == P_RUN && fails < NFAIL -> fails++; end_run(w, P_RETRY) } \
  :: d_step { st[w] == LIVE && ph[w] == P_RUN && fails < NFAIL -> fails++; end_run(w, P_BURY) } \
  :: d_step { st[w] == LIVE && SETTLING(w) -> settle_call(w); finish(w) } \
  :: d_step { st[w] == LIVE && SETTLING(w) && CAN_FAULT(f_lostreply) -> \
       faults++; f_lostreply = 1; printf("w%d: the reply of its settlement is lost\n", w); settle_call(w) } \
  :: d_step { st[w] == LIVE && ph[w] >= P_RETRY && CAN_FAULT(f_writeerr) -> \
       faults++; f_writeerr = 1; write_error(w) } \
  :: d_step { st[w] == LIVE && cur[w] != 0 && pend[cur[w]] && own[cur[w]] == w && \
       !stale[cur[w]] && CAN_FAULT(f_gap) -> faults++; f_gap = 1; stale[cur[w]] = 1; \
       printf("w%d renewal gap: e%d idles past the timeout\n", w, cur[w]) } \
  :: d_step { st[w] != CRASHED && st[1 - w] != CRASHED && (cur[w] != 0 || OWNS(w)) && \
       CAN_FAULT(f_crash) -> crash(w) } \
  :: d_step { st[w] == LIVE && (cur[w] != 0 || OWNS(w)) && CAN_FAULT(f_freeze) -> \
       faults++; f_freeze = 1; mark_hurt(w); st[w] = FROZEN; quiet[w] = 1; printf("w%d FREEZES\n", w) } \
  :: d_step { st[w] == FROZEN -> st[w] = LIVE; quiet[w] = 0; printf("w%d resumes\n", w) }

init {
  do
  WORKER(0)
  WORKER(1)
  /* the client */
  :: d_step { enqs < NENQ -> enqueue(0, 0) }
  :: d_step { enqs < NENQ -> enqueue(1, 0) }
  :: d_step { enqs < NENQ -> enqueue(1, 1) }
  :: d_step { cancels < NCANCEL -> cancel() }
#ifndef NO_STRIKE
  :: d_step { !struck -> struck = 1; strike = 1; printf("client strike.lua\n") }
  :: d_step { strike -> unhold() }
#endif
  /* time passes: a scheduled task falls due, and a live worker's tick.lua moves it */
  :: d_step { sched && (st[0] == LIVE || st[1] == LIVE) -> promote() }
  /* Redis restarts with its AOF */
  :: d_step { ANY(PENDING) && CAN_FAULT(f_restart) -> restart() }
  :: else -> break
  od;
  skip;  /* (a jump target outside the d_step below) */

  /* Quiescence: no call, fault or step is left. Invariant 1: every accepted task ended as
   * completed, cancelled, a dead letter, or replaced by a newer task of its key; nothing waits
   * or runs. Invariant 4: the key is free again. */
  d_step {
    CHECK(4, ik == I_NONE && bes == 0);
    CHECK(1, !sched && !held);
    t_i = 1;
    do
    :: t_i < NE ->
       CHECK(1, !instr[t_i] && !pend[t_i]);
       CHECK(4, !tomb[t_i]);
       t_i++
    :: else -> break
    od;
    t_i = 1;
    do
    :: t_i <= lastgen ->
       CHECK(1, done[t_i] || canc[t_i] || kc[t_i] || dead[t_i] || dropped[t_i]);
       t_i++
    :: else -> break
    od
  }
}
