"""hooksync's Job: converge one target namespace to what Git says."""

from jobimage.lightimport import register_kubernetes_package

register_kubernetes_package()
