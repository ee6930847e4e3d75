"""Files and images: atomic writes, staged folders, copies that follow no links, and the one image reader."""
