"""A Hydra sweeper on a current Optuna: multi-objective studies kept on disk.

The sweeper on the package index (``hydra-optuna-sweeper`` 1.2/1.3) pins ``optuna<3``, whose
SQL storage fails on SQLAlchemy 2; its older 1.1 release pins ``alembic<1.7``, which cannot
import under SQLAlchemy 2 either. This plugin keeps the same configuration style
(``hydra.sweeper.params`` in Hydra's sweep grammar) on Optuna 4+.
"""
