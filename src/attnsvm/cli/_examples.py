"""The examples ``attnsvm COMMAND --help`` shows under its options (argparse epilogs)."""

from __future__ import annotations

__all__ = ["EXAMPLES"]

#: sub-command -> the epilog of its ``--help``
EXAMPLES: dict[str, str] = {
    "solve": """examples:
  attnsvm solve mine.npz                      # Frobenius Att-SVM of the optimal tokens
  attnsvm solve mine.npz --norm nuc --out r.npz --json
                                              # nuclear norm; W, alpha and dual in r.npz

exit codes: 0 verified optimum, 3 infeasible (certificate in --out), 2 bad input,
1 an answer that fails its own check (nothing written)""",
    "train": """examples:
  attnsvm train mine.npz --param W            # normalized GD on W, 2000 steps
  attnsvm train mine.npz --param KQ --steps 5000 --out run.npz --json

the correlations printed are with the Att-SVMs of the tokens the run selected""",
    "reproduce": """examples:
  attnsvm reproduce --quick                   # every figure, reduced, about a minute
  attnsvm reproduce rank multi-token --out report/
  attnsvm reproduce --list                    # names and measured times""",
    "probe": """examples:
  attnsvm probe --layers 0 --no-nuclear       # MiniLM-L6 layer 0, Frobenius target
  attnsvm probe --model smollm2 --layers 0 --json > heads.json""",
    "ntp": """examples:
  attnsvm ntp data.npz                        # graphs, SCCs, Graph-SVM, W_fin
  attnsvm ntp data.npz --steps 4000 --json    # and normalized GD on W compared with them

data.npz holds E (K, d), tokens (n, T) ids in [0, K), labels (n,) occurring in their row""",
    "pretrain": """examples:
  attnsvm pretrain --task induction --steps 200 --checkpoints 4 --out runs/ind
                                              # 5 step-* Hugging Face folders
  attnsvm pretrain --task corpus --optimizer muon --steps 1000 --out runs/corpus""",
    "track": """examples:
  attnsvm track runs/ind --no-nuclear --out track/   # every step-* folder, in step order
  attnsvm track runs/ind/step-000000 runs/ind/step-000200 --layers 1 --json""",
}
