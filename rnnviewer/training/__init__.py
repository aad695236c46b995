"""Qt-free training: the TrainingSession step loop, snapshots, session files and the
headless `rnnviewer train` command. Nothing here imports Qt."""
