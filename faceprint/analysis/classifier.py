"""The estimator behind trained attributes (``trained.py``): multinomial logistic regression on
faceprints, in scikit-learn's conventions. Apart from ``trained.py`` so that scikit-learn (a second
to import) loads only where a classifier is fitted or used, not in every command that names a folder."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression


class FaceprintClassifier(ClassifierMixin, BaseEstimator):
    """Multinomial logistic regression on unit-length faceprints (each block of features unit
    length: ``features(..., kind)``). ``C``: inverse regularisation."""

    def __init__(self, C: float = 10.0) -> None:
        self.C = C

    def fit(self, X: np.ndarray, y) -> FaceprintClassifier:
        model = LogisticRegression(C=self.C, max_iter=2000).fit(np.asarray(X, np.float64), np.asarray(y))
        self.classes_, self.coef_, self.intercept_ = model.classes_, model.coef_, model.intercept_
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        z = np.asarray(X, np.float64) @ self.coef_.T + self.intercept_
        if len(self.classes_) == 2:  # scikit-learn's binary form: one logit, for the second class
            p = 1.0 / (1.0 + np.exp(-z[:, 0]))
            return np.stack([1.0 - p, p], axis=1)
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]
