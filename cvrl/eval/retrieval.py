"""Video retrieval (the video self-supervised literature's protocol: Xu et
al. 2019, clip order prediction; Han et al. 2020, CoCLR).

Each test video queries the training videos by cosine similarity of their
features (each averaged over its clips); a query scores a hit at k when one
of its k nearest training videos has its class. R@k is the share of
queries with a hit at k.
"""

from typing import Dict, Sequence

import numpy as np

KS = (1, 5, 10, 20)


def recall_at_k(query: np.ndarray, query_labels: np.ndarray,
                gallery: np.ndarray, gallery_labels: np.ndarray,
                ks: Sequence[int] = KS) -> Dict[int, float]:
  """{k: R@k} of the queries against the gallery (cosine similarity).

  Ties in similarity are broken by gallery order (a stable sort), so the
  result does not depend on the platform's sort.
  """
  query = np.asarray(query, np.float64)
  gallery = np.asarray(gallery, np.float64)
  if query.ndim != 2 or gallery.ndim != 2 or query.shape[1] != (
      gallery.shape[1]):
    raise ValueError(f'features must be [N, D] with the same D: query '
                     f'{query.shape}, gallery {gallery.shape}')
  if len(query) != len(query_labels) or len(gallery) != len(gallery_labels):
    raise ValueError('one label per feature row expected')
  unit = lambda x: x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True),
                                  1e-12)
  similarity = unit(query) @ unit(gallery).T
  order = np.argsort(-similarity, axis=1, kind='stable')
  same = np.asarray(gallery_labels)[order] == np.asarray(
      query_labels)[:, None]
  return {k: float(np.mean(same[:, :min(k, len(gallery))].any(axis=1)))
          for k in ks}


def format_recalls(name: str, recalls: Dict[int, float]) -> str:
  return f'{name:10s} ' + '  '.join(f'R@{k} {100 * v:6.2f}'
                                    for k, v in recalls.items())
