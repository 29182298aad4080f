/** @type {AppTypes.Config} */
// pacsflow's configuration of the OHIF viewer (3.13.2), served at /viewer/app-config.js in
// place of OHIF's own. One data source: pacsflow's DICOMweb on the page's own origin, reached
// with the browser's pacsflow session cookie, so there is no second login and no URL outside
// pacsflow. Keys are those the 3.13.2 bundle reads.
const dicomweb = window.location.origin + '/dicomweb';

window.config = {
  name: 'pacsflow',
  // Matches PUBLIC_URL in viewer/fetch.sh and URL_PREFIX in pacsflow/web/viewer.py.
  routerBasename: '/viewer',
  extensions: [],
  modes: [],
  customizationService: {
    global: {
      // The segmentation tools that fetch code or models from the internet (the SAM-based
      // "Labelmap Assist" and "Marker Guided Labelmap" from huggingface.co, interpolation from
      // cdn.jsdelivr.net) cannot work on an offline site: they are left out of the toolbox.
      'cornerstone.segmentationToolbarSections': {
        LabelMapTools: { $set: ['BrushTools', 'ClickSegment', 'Shapes', 'LabelMapEditWithContour'] },
        LabelMapUtilities: { $set: ['SegmentBidirectional'] },
      },
    },
  },
  // OHIF's study list at /viewer: the dashboard is the search, this is its fallback.
  showStudyList: true,
  maxNumberOfWebWorkers: 3,
  showWarningMessageForCrossOrigin: false,
  showCPUFallbackMessage: true,
  showLoadingIndicator: true,
  strictZSpacingForVolumeViewport: true,
  groupEnabledModesFirst: true,
  maxNumRequests: {
    interaction: 100,
    thumbnail: 5,
    prefetch: 25,
  },
  showErrorDetails: 'always',
  // The logo is a way back to pacsflow's dashboard; OHIF's arrow beside it opens its study list.
  whiteLabeling: {
    createLogoComponentFn: React =>
      React.createElement(
        'a',
        {
          href: '/',
          className: 'text-primary-light text-lg font-semibold',
          onClick: event => event.stopPropagation(),
        },
        'pacsflow'
      ),
  },
  defaultDataSourceName: 'pacsflow',
  dataSources: [
    {
      namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
      sourceName: 'pacsflow',
      configuration: {
        friendlyName: 'pacsflow',
        name: 'pacsflow',
        qidoRoot: dicomweb,
        wadoRoot: dicomweb,
        wadoUriRoot: dicomweb,
        qidoSupportsIncludeField: true,
        imageRendering: 'wadors',
        thumbnailRendering: 'wadors',
        enableStudyLazyLoad: true,
        supportsFuzzyMatching: true,
        supportsWildcard: true,
        // Saved SEGs and SRs go to pacsflow's STOW-RS (at wadoRoot), which starts radiomics.
        supportsStow: true,
        dicomUploadEnabled: true,
        supportsReject: false,
        omitQuotationForMultipartRequest: true,
        bulkDataURI: {
          enabled: true,
        },
        // Store drawn segmentations as binary Segmentation Storage, uncompressed, which the
        // routing rules and the radiomics workflow read; OHIF's default would be Label Map
        // Segmentation Storage with RLE.
        segmentation: {
          store: {
            defaultMode: 'bitmap',
            transferSyntaxUID: '1.2.840.10008.1.2.1',
          },
        },
      },
    },
  ],
};
