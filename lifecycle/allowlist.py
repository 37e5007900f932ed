"""The exact allow-list for skops artifacts: every fully qualified name a file may ask for.

A name is trusted because it is written here (or is one of scikit-learn's own estimator classes),
never because of the package it lives in: `numpy.load`, `numpy.testing` helpers, `builtins.eval`,
`os.system`, `importlib.import_module` and everything else unlisted are refused by name. The
lists were found by dumping real fitted models with skops.io.dump and reading the schema
(tests/lifecycle/test_allowlist.py keeps them honest). Widening the list is a reviewed code change:
settings.SKOPS_ALLOWED_TYPES points here, deliberately not at an environment variable."""

from __future__ import annotations

# skops names scikit-learn's Cython losses by the bare module name "_loss", which Cython also
# registers in sys.modules for sklearn._loss._loss: importing it here makes that alias resolve to
# scikit-learn's module, never to a file found on sys.path.
import sklearn._loss._loss  # noqa: F401
from sklearn.utils import all_estimators

# Containers and plain values: skops stores them as JSON or rebuilds them with the type itself.
# `builtins.object` comes from make_column_selector(dtype_include=object). Not `builtins.type`:
# calling type(name, bases, namespace) builds a class, and no model needs it (nor NoneType and
# complex, which skops cannot load or save).
BUILTIN_TYPES = (
    "builtins.bool",
    "builtins.bytes",
    "builtins.dict",
    "builtins.float",
    "builtins.int",
    "builtins.list",
    "builtins.object",
    "builtins.set",
    "builtins.slice",
    "builtins.str",
    "builtins.tuple",
)

# HistGradientBoosting wraps check_array in a partial. skops always rebuilds a plain
# functools.partial, and the function inside must be on this list too.
STDLIB_TYPES = ("functools.partial",)

# Arrays, dtypes and random states, as skops writes them (it reads arrays with np.load(...,
# allow_pickle=False) and sparse matrices with load_npz, which never unpickles).
NUMPY_TYPES = (
    "numpy.ndarray",
    "numpy.dtype",
    "numpy.ma.MaskedArray",  # cv_results_ of the search estimators
    "numpy.random.mtrand.RandomState",
    "numpy.random._generator.Generator",  # HistGradientBoosting's feature subsampling
    # the bit generator a Generator is rebuilt with (named inside its state, see artifacts.py)
    "numpy.random.MT19937",
    "numpy.random.PCG64",
    "numpy.random.PCG64DXSM",
    "numpy.random.Philox",
    "numpy.random.SFC64",
    # scalar types (np.sctypeDict): fitted attributes such as n_iter_ or a threshold
    "numpy.bool",
    "numpy.bytes_",
    "numpy.clongdouble",
    "numpy.complex64",
    "numpy.complex128",
    "numpy.datetime64",
    "numpy.float16",
    "numpy.float32",
    "numpy.float64",
    "numpy.int8",
    "numpy.int16",
    "numpy.int32",
    "numpy.int64",
    "numpy.longdouble",
    "numpy.longlong",
    "numpy.object_",
    "numpy.str_",
    "numpy.timedelta64",
    "numpy.uint8",
    "numpy.uint16",
    "numpy.uint32",
    "numpy.uint64",
    "numpy.ulonglong",
    "numpy.void",
)

SCIPY_TYPES = tuple(
    f"scipy.sparse._{fmt}.{fmt}_{kind}"
    for fmt in ("bsr", "coo", "csc", "csr", "dia", "dok", "lil")
    for kind in ("array", "matrix")
) + (
    "scipy.interpolate._bsplines.BSpline",  # SplineTransformer's fitted splines
)

# Classes scikit-learn composes models with, listed even where all_estimators() has them too.
SKLEARN_COMPOSITION = (
    "sklearn.pipeline.Pipeline",
    "sklearn.pipeline.FeatureUnion",
    "sklearn.compose._column_transformer.ColumnTransformer",
    "sklearn.compose._column_transformer.make_column_selector",
    "sklearn.compose._target.TransformedTargetRegressor",
    # estimators behind sklearn.experimental flags, which all_estimators() skips
    "sklearn.impute._iterative.IterativeImputer",
    "sklearn.model_selection._search_successive_halving.HalvingGridSearchCV",
    "sklearn.model_selection._search_successive_halving.HalvingRandomSearchCV",
)

_DIST = "sklearn.metrics._dist_metrics"
_KERNELS = "sklearn.gaussian_process.kernels"
_SPLIT = "sklearn.model_selection._split"

# Internal types scikit-learn keeps in fitted estimators: plain state, no file access, no code
# execution. Tree, TreePredictor, KDTree and BallTree hold indices scikit-learn trusts without
# bounds checks; artifacts.py checks trees and HistGradientBoosting predictors before any use.
SKLEARN_INTERNAL_TYPES: dict[str, tuple[str, ...]] = {
    "decision trees and the forests and boosting built from them": (
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    ),
    "losses and links of gradient boosting and the generalized linear models": tuple(
        f"sklearn._loss.loss.{name}"
        for name in (
            "AbsoluteError",
            "ExponentialLoss",
            "HalfBinomialLoss",
            "HalfGammaLoss",
            "HalfMultinomialLoss",
            "HalfPoissonLoss",
            "HalfSquaredError",
            "HalfTweedieLoss",
            "HalfTweedieLossIdentity",
            "HuberLoss",
            "PinballLoss",
        )
    )
    + tuple(
        f"_loss.Cy{name}"  # the Cython halves, under the module name skops writes (see above)
        for name in (
            "AbsoluteError",
            "ExponentialLoss",
            "HalfBinomialLoss",
            "HalfGammaLoss",
            "HalfMultinomialLoss",
            "HalfPoissonLoss",
            "HalfSquaredError",
            "HalfTweedieLoss",
            "HalfTweedieLossIdentity",
            "HuberLoss",
            "PinballLoss",
        )
    )
    + tuple(
        f"sklearn._loss.link.{name}"
        for name in ("HalfLogitLink", "IdentityLink", "Interval", "LogLink", "LogitLink", "MultinomialLogit")
    ),
    "SGD losses (SGDClassifier, SGDRegressor, Perceptron, PassiveAggressive*)": tuple(
        f"sklearn.linear_model._sgd_fast.{name}"
        for name in ("EpsilonInsensitive", "Hinge", "ModifiedHuber", "SquaredEpsilonInsensitive", "SquaredHinge")
    ),
    "neighbour search trees and their metrics (not PyFuncDistance64, which wraps any callable)": (
        "sklearn.neighbors._ball_tree.BallTree",
        "sklearn.neighbors._kd_tree.KDTree",
    )
    + tuple(
        f"{_DIST}.{name}Distance64"
        for name in (
            "BrayCurtis",
            "Canberra",
            "Chebyshev",
            "Dice",
            "Euclidean",
            "Hamming",
            "Haversine",
            "Jaccard",
            "Kulsinski",
            "Mahalanobis",
            "Manhattan",
            "Matching",
            "Minkowski",
            "RogersTanimoto",
            "RussellRao",
            "SEuclidean",
            "SokalMichener",
            "SokalSneath",
        )
    ),
    "Gaussian process kernels and the binary classifier GaussianProcessClassifier fits": tuple(
        f"{_KERNELS}.{name}"
        for name in (
            "CompoundKernel",
            "ConstantKernel",
            "DotProduct",
            "ExpSineSquared",
            "Exponentiation",
            "Matern",
            "PairwiseKernel",
            "Product",
            "RBF",
            "RationalQuadratic",
            "Sum",
            "WhiteKernel",
        )
    )
    + ("sklearn.gaussian_process._gpc._BinaryGaussianProcessClassifierLaplace",),
    "helpers fitted meta-estimators keep": (
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        "sklearn.cluster._bisect_k_means._BisectingTree",
        "sklearn.impute._iterative._ImputerTriplet",
        "sklearn.multiclass._ConstantPredictor",
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
        "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
        "sklearn.utils._bunch.Bunch",
        "sklearn.utils._metadata_requests.MetadataRequest",
        "sklearn.utils._metadata_requests.MethodMetadataRequest",
    ),
    "scorers and cross-validation splitters of the *CV and search estimators": (
        "sklearn.metrics._scorer._CurveScorer",
        "sklearn.metrics._scorer._PassthroughScorer",
        "sklearn.metrics._scorer._Scorer",
    )
    + tuple(
        f"{_SPLIT}.{name}"
        for name in (
            "GroupKFold",
            "KFold",
            "PredefinedSplit",
            "RepeatedKFold",
            "RepeatedStratifiedKFold",
            "ShuffleSplit",
            "StratifiedGroupKFold",
            "StratifiedKFold",
            "StratifiedShuffleSplit",
            "TimeSeriesSplit",
        )
    ),
}

# Functions a model may hold and call: pure computations on arrays, no files, no code execution,
# no imports. Anything else (numpy.load, exec-based test helpers, eval, os.system...) is refused.
SAFE_FUNCTIONS: dict[str, str] = {
    "numpy.log": "FunctionTransformer / TransformedTargetRegressor: elementwise ufunc",
    "numpy.log1p": "FunctionTransformer / TransformedTargetRegressor: elementwise ufunc",
    "numpy.exp": "inverse of numpy.log: elementwise ufunc",
    "numpy.expm1": "inverse of numpy.log1p: elementwise ufunc",
    "numpy.sqrt": "FunctionTransformer / TransformedTargetRegressor: elementwise ufunc",
    "numpy.square": "inverse of numpy.sqrt: elementwise ufunc",
    "numpy.mean": "FeatureAgglomeration's default pooling_func: a reduction",
    "sklearn.utils.validation.check_array": "HistGradientBoosting's categorical preprocessor: validates arrays",
    "scipy._lib.array_api_compat.numpy._aliases.asarray": "kept by scipy's BSpline (SplineTransformer)",
    "sklearn.cluster._kmeans._kmeans_single_lloyd": "BisectingKMeans keeps its k-means step: arithmetic",
    "sklearn.cluster._kmeans._kmeans_single_elkan": "BisectingKMeans keeps its k-means step: arithmetic",
    "sklearn.feature_selection._univariate_selection.f_classif": "default score_func of SelectKBest and kin",
    "sklearn.feature_selection._univariate_selection.f_regression": "score_func for regression feature selection",
    "sklearn.feature_selection._univariate_selection.r_regression": "score_func for regression feature selection",
    "sklearn.feature_selection._univariate_selection.chi2": "score_func for non-negative features",
    "sklearn.feature_selection._mutual_info.mutual_info_classif": "score_func: mutual information",
    "sklearn.feature_selection._mutual_info.mutual_info_regression": "score_func: mutual information",
    # the metrics behind the scoring names of the validation check (docs/design.md, Checks);
    # balanced_accuracy is TunedThresholdClassifierCV's default
    "sklearn.metrics._classification.accuracy_score": "scorer metric (scoring='accuracy')",
    "sklearn.metrics._classification.balanced_accuracy_score": "scorer metric (scoring='balanced_accuracy')",
    "sklearn.metrics._classification.f1_score": "scorer metric (scoring='f1')",
    "sklearn.metrics._ranking.roc_auc_score": "scorer metric (scoring='roc_auc')",
    "sklearn.metrics._regression.mean_absolute_error": "scorer metric (scoring='neg_mean_absolute_error')",
    "sklearn.metrics._regression.root_mean_squared_error": "scorer metric (scoring='neg_root_mean_squared_error')",
    "sklearn.metrics._regression.r2_score": "scorer metric (scoring='r2')",
}


def sklearn_estimator_types() -> frozenset[str]:
    """scikit-learn's public estimator, transformer and meta-estimator classes, by the module that
    defines them (the name skops writes), as sklearn.utils.all_estimators() lists them."""
    return frozenset(f"{cls.__module__}.{cls.__qualname__}" for _, cls in all_estimators())


ALLOWED_TYPES: frozenset[str] = (
    sklearn_estimator_types()
    | frozenset(SKLEARN_COMPOSITION)
    | frozenset(name for names in SKLEARN_INTERNAL_TYPES.values() for name in names)
    | frozenset(BUILTIN_TYPES)
    | frozenset(STDLIB_TYPES)
    | frozenset(NUMPY_TYPES)
    | frozenset(SCIPY_TYPES)
    | frozenset(SAFE_FUNCTIONS)
)
