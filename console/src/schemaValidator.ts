// A JSON Schema validator for @rjsf forms that evaluates no code.
//
// @rjsf/validator-ajv8 compiles each schema into a function with
// `new Function`, which the console's Content-Security-Policy forbids
// (script-src 'self', no 'unsafe-eval'); plugin schemas arrive at run time,
// so they cannot be precompiled either. @cfworker/json-schema interprets
// schemas instead. Eddy's API checks every configuration again on save
// (the authority); this gives the form its errors before anything is sent.
import { Validator, type OutputUnit, type Schema } from '@cfworker/json-schema'
import {
  createErrorHandler,
  getDefaultFormState,
  toErrorSchema,
  unwrapErrorHandler,
  validationDataMerge,
  type CustomValidator,
  type ErrorTransformer,
  type RJSFSchema,
  type RJSFValidationError,
  type UiSchema,
  type ValidationData,
  type ValidatorType,
} from '@rjsf/utils'

// Keywords whose errors only say that something inside failed: the inner
// error says what.
const containers = new Set(['properties', 'items', 'prefixItems', 'additionalItems', 'allOf', '$ref', 'dependentSchemas', 'patternProperties', 'unevaluatedProperties'])

const cache = new Map<string, Validator>()

function validatorFor(schema: RJSFSchema, root?: RJSFSchema): Validator {
  const key = JSON.stringify([schema, root === schema ? null : root])
  let v = cache.get(key)
  if (!v) {
    v = new Validator(schema as Schema, '2020-12', false)
    if (root && root !== schema) v.addSchema(root as Schema)
    if (cache.size > 200) cache.clear()
    cache.set(key, v)
  }
  return v
}

// toRJSF turns the validator's output into rjsf's errors: the property as
// rjsf paths it (".url", ".headers.0.name"), the message, and for a
// missing required property, that property's own path.
function toRJSF(units: OutputUnit[]): RJSFValidationError[] {
  const out: RJSFValidationError[] = []
  for (const u of units) {
    if (containers.has(u.keyword)) continue
    let property = u.instanceLocation.replace(/^#/, '').replace(/\//g, '.')
    let message = u.error.replace(/\.$/, '')
    if (u.keyword === 'required') {
      const missing = /property "([^"]+)"/.exec(u.error)?.[1]
      if (missing) {
        property = property + '.' + missing
        message = 'is required'
      }
    }
    out.push({ name: u.keyword, property, message, stack: `${property.replace(/^\./, '')} ${message}`.trim(), schemaPath: u.keywordLocation })
  }
  return out
}

function validate(schema: RJSFSchema, data: unknown, root?: RJSFSchema) {
  try {
    return { errors: toRJSF(validatorFor(schema, root).validate(data === undefined ? {} : data).errors) }
  } catch (e) {
    return { errors: [] as RJSFValidationError[], validationError: e as Error }
  }
}

export const schemaValidator: ValidatorType = {
  validateFormData(formData: unknown, schema: RJSFSchema, customValidate?: CustomValidator, transformErrors?: ErrorTransformer, uiSchema?: UiSchema): ValidationData<unknown> {
    const raw = validate(schema, formData)
    let errors = raw.errors
    if (raw.validationError) errors = [...errors, { stack: 'the schema is invalid: ' + raw.validationError.message }]
    if (transformErrors) errors = transformErrors(errors, uiSchema)
    const errorSchema = toErrorSchema(errors)
    if (!customValidate) return { errors, errorSchema }
    const full = getDefaultFormState(schemaValidator, schema, formData, schema, true)
    const handler = customValidate(full, createErrorHandler(full), uiSchema, errorSchema)
    return validationDataMerge({ errors, errorSchema }, unwrapErrorHandler(handler))
  },
  isValid(schema: RJSFSchema, formData: unknown, rootSchema: RJSFSchema): boolean {
    const r = validate(schema, formData, rootSchema)
    return !r.validationError && r.errors.length === 0
  },
  rawValidation<Result = unknown>(schema: RJSFSchema, formData?: unknown) {
    const r = validate(schema, formData)
    return { errors: r.errors as unknown as Result[], validationError: r.validationError }
  },
}
