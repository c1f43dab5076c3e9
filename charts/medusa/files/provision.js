// storesync: provisions a Medusa v2 store so it can take an order right after installation.
// Run by the setup Job as `medusa exec /opt/storesync/provision.js` (CommonJS; the application's
// node_modules are found through NODE_PATH). Idempotent: every object is looked up by a stable
// name before it is created, links are checked before they are made, and store settings that
// come from the store values (name, default currency) are re-applied on every run.
"use strict"

const fs = require("node:fs")
const path = require("node:path")
const { ContainerRegistrationKeys, Modules, ProductStatus } = require("@medusajs/framework/utils")
const {
  createApiKeysWorkflow,
  createProductsWorkflow,
  createRegionsWorkflow,
  createSalesChannelsWorkflow,
  createShippingOptionsWorkflow,
  createShippingProfilesWorkflow,
  createStockLocationsWorkflow,
  createTaxRegionsWorkflow,
  linkSalesChannelsToApiKeyWorkflow,
  linkSalesChannelsToStockLocationWorkflow,
  updateStoresWorkflow,
} = require("@medusajs/medusa/core-flows")

const NAMES = {
  salesChannel: "Default Sales Channel",
  stockLocation: "storesync warehouse",
  fulfillmentSet: "storesync delivery",
  serviceZone: "storesync zone",
  shippingProfile: "Default Shipping Profile",
  shippingOption: "Standard Shipping",
  apiKey: process.env.STOREFRONT_API_TITLE || "storesync storefront",
  productHandle: "storesync-sample",
  productSku: "STORESYNC-SAMPLE",
}

function required(name) {
  const value = process.env[name]
  if (!value) throw new Error(`environment variable ${name} is not set`)
  return value
}

function amount(name) {
  const value = Number(required(name))
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a non-negative number`)
  return value
}

async function provision({ container }) {
  const logger = container.resolve(ContainerRegistrationKeys.LOGGER)
  const link = container.resolve(ContainerRegistrationKeys.LINK)
  const query = container.resolve(ContainerRegistrationKeys.QUERY)
  const stores = container.resolve(Modules.STORE)
  const salesChannels = container.resolve(Modules.SALES_CHANNEL)
  const regions = container.resolve(Modules.REGION)
  const taxes = container.resolve(Modules.TAX)
  const stockLocations = container.resolve(Modules.STOCK_LOCATION)
  const fulfillment = container.resolve(Modules.FULFILLMENT)
  const apiKeys = container.resolve(Modules.API_KEY)
  const products = container.resolve(Modules.PRODUCT)
  const users = container.resolve(Modules.USER)

  const storeName = required("STORE_NAME")
  const currency = required("STORE_CURRENCY").toLowerCase()
  const regionName = required("REGION_NAME")
  const countries = required("REGION_COUNTRIES")
    .split(",")
    .map((c) => c.trim().toLowerCase())
    .filter(Boolean)
  const shippingPrice = amount("SHIPPING_PRICE")
  const productPrice = amount("SAMPLE_PRODUCT_PRICE")
  const productName = required("SAMPLE_PRODUCT_NAME")
  const adminEmail = required("ADMIN_EMAIL")
  const stateDir = required("STATE_DIR")

  // Sales channel.
  let [channel] = await salesChannels.listSalesChannels({ name: NAMES.salesChannel })
  if (!channel) {
    const { result } = await createSalesChannelsWorkflow(container).run({
      input: { salesChannelsData: [{ name: NAMES.salesChannel }] },
    })
    channel = result[0]
    logger.info(`storesync: created sales channel ${channel.id}`)
  }

  // Region (currency, countries, manual payment provider).
  let [region] = await regions.listRegions({ name: regionName })
  if (!region) {
    const { result } = await createRegionsWorkflow(container).run({
      input: {
        regions: [
          { name: regionName, currency_code: currency, countries, payment_providers: ["pp_system_default"] },
        ],
      },
    })
    region = result[0]
    logger.info(`storesync: created region ${region.id} (${currency})`)
  }

  // Store settings from the store values: re-applied every run. Other currencies a merchant
  // added are kept; the store's currency becomes the default.
  const [store] = await stores.listStores({}, { relations: ["supported_currencies"] })
  const currencies = (store.supported_currencies || [])
    .filter((c) => c.currency_code !== currency)
    .map((c) => ({ currency_code: c.currency_code, is_default: false }))
  currencies.unshift({ currency_code: currency, is_default: true })
  await updateStoresWorkflow(container).run({
    input: {
      selector: { id: store.id },
      update: {
        name: storeName,
        supported_currencies: currencies,
        default_sales_channel_id: channel.id,
        default_region_id: region.id,
      },
    },
  })

  // Tax regions, one per country (system provider, no rates: prices are tax-inclusive as set).
  for (const country_code of countries) {
    const existing = await taxes.listTaxRegions({ country_code })
    if (!existing.length) {
      await createTaxRegionsWorkflow(container).run({ input: [{ country_code, provider_id: "tp_system" }] })
    }
  }

  // Shipping profile.
  let [profile] = await fulfillment.listShippingProfiles({ type: "default" })
  if (!profile) {
    const { result } = await createShippingProfilesWorkflow(container).run({
      input: { data: [{ name: NAMES.shippingProfile, type: "default" }] },
    })
    profile = result[0]
  }

  // Stock location, linked to the manual fulfillment provider and the sales channel.
  let [location] = await stockLocations.listStockLocations({ name: NAMES.stockLocation })
  if (!location) {
    const { result } = await createStockLocationsWorkflow(container).run({
      input: {
        locations: [
          { name: NAMES.stockLocation, address: { address_1: "", city: "", country_code: countries[0].toUpperCase() } },
        ],
      },
    })
    location = result[0]
    logger.info(`storesync: created stock location ${location.id}`)
  }

  // Fulfillment set with one service zone covering the region's countries.
  let [fulfillmentSet] = await fulfillment.listFulfillmentSets(
    { name: NAMES.fulfillmentSet },
    { relations: ["service_zones"] }
  )
  if (!fulfillmentSet) {
    fulfillmentSet = await fulfillment.createFulfillmentSets({
      name: NAMES.fulfillmentSet,
      type: "shipping",
      service_zones: [
        { name: NAMES.serviceZone, geo_zones: countries.map((country_code) => ({ country_code, type: "country" })) },
      ],
    })
  }

  const {
    data: [locationLinks],
  } = await query.graph({
    entity: "stock_location",
    fields: ["id", "fulfillment_providers.id", "fulfillment_sets.id", "sales_channels.id"],
    filters: { id: location.id },
  })
  const has = (list, id) => (list || []).some((item) => item && item.id === id)
  if (!has(locationLinks.fulfillment_providers, "manual_manual")) {
    await link.create({
      [Modules.STOCK_LOCATION]: { stock_location_id: location.id },
      [Modules.FULFILLMENT]: { fulfillment_provider_id: "manual_manual" },
    })
  }
  if (!has(locationLinks.fulfillment_sets, fulfillmentSet.id)) {
    await link.create({
      [Modules.STOCK_LOCATION]: { stock_location_id: location.id },
      [Modules.FULFILLMENT]: { fulfillment_set_id: fulfillmentSet.id },
    })
  }
  if (!has(locationLinks.sales_channels, channel.id)) {
    await linkSalesChannelsToStockLocationWorkflow(container).run({
      input: { id: location.id, add: [channel.id] },
    })
  }

  // Flat-rate shipping option in the service zone.
  const [option] = await fulfillment.listShippingOptions({ name: NAMES.shippingOption })
  if (!option) {
    await createShippingOptionsWorkflow(container).run({
      input: [
        {
          name: NAMES.shippingOption,
          price_type: "flat",
          provider_id: "manual_manual",
          service_zone_id: fulfillmentSet.service_zones[0].id,
          shipping_profile_id: profile.id,
          type: { label: "Standard", description: "Standard delivery", code: "standard" },
          prices: [
            { currency_code: currency, amount: shippingPrice },
            { region_id: region.id, amount: shippingPrice },
          ],
          rules: [
            { attribute: "enabled_in_store", value: "true", operator: "eq" },
            { attribute: "is_return", value: "false", operator: "eq" },
          ],
        },
      ],
    })
  }

  // Publishable API key of the storefront, scoped to the sales channel.
  let [apiKey] = (await apiKeys.listApiKeys({ title: NAMES.apiKey, type: "publishable" })).filter(
    (key) => !key.revoked_at
  )
  if (!apiKey) {
    const { result } = await createApiKeysWorkflow(container).run({
      input: { api_keys: [{ title: NAMES.apiKey, type: "publishable", created_by: "" }] },
    })
    apiKey = result[0]
  }
  const {
    data: [keyLinks],
  } = await query.graph({ entity: "api_key", fields: ["id", "sales_channels.id"], filters: { id: apiKey.id } })
  if (!has(keyLinks.sales_channels, channel.id)) {
    await linkSalesChannelsToApiKeyWorkflow(container).run({ input: { id: apiKey.id, add: [channel.id] } })
  }

  // Sample product: created once; later edits by the merchant are never overwritten.
  const [product] = await products.listProducts({ handle: NAMES.productHandle }, { withDeleted: true })
  if (!product) {
    await createProductsWorkflow(container).run({
      input: {
        products: [
          {
            title: productName,
            handle: NAMES.productHandle,
            status: ProductStatus.PUBLISHED,
            shipping_profile_id: profile.id,
            options: [{ title: "Default option", values: ["Default option value"] }],
            variants: [
              {
                title: productName,
                sku: NAMES.productSku,
                options: { "Default option": "Default option value" },
                manage_inventory: false,
                prices: [{ amount: productPrice, currency_code: currency }],
              },
            ],
            sales_channels: [{ id: channel.id }],
          },
        ],
      },
    })
    logger.info(`storesync: created sample product "${productName}"`)
  }

  // Tell the shell whether `medusa user` must create the admin (the CLI fails on duplicates).
  const admins = await users.listUsers({ email: adminEmail })
  fs.mkdirSync(stateDir, { recursive: true })
  fs.writeFileSync(path.join(stateDir, "admin-user"), admins.length ? "present" : "missing")
  fs.writeFileSync(path.join(stateDir, "provisioned"), new Date().toISOString())
  logger.info(`storesync: store "${storeName}" provisioned`)
}

module.exports = provision
module.exports.default = provision
