"""The drop-in's attacks, one module each, named as torchattacks names them."""
