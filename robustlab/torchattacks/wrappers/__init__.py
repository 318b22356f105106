"""The drop-in's wrappers (`MultiAttack`, `LGV`), one module each, as in torchattacks."""
