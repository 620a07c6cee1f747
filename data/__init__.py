"""The course's datasets, shipped in this folder (nothing is downloaded).

    from data.load import load_dataset
    X_train, y_train, X_test, y_test = load_dataset("moons")

See data/README.md for where each file comes from, its licence and how to regenerate it.
"""
